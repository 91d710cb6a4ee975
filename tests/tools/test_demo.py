"""`make demo` end to end, shrunk to seconds (tools/demo.py): every stage runs and the summary has its keys."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_demo_end_to_end_writes_the_summary(tmp_path, capsys):
    from configs.demo import get_config
    from tools.demo import run_demo

    config = get_config()
    config.model.num_stacks, config.model.channels, config.model.depth, config.model.input_size = 1, 16, 1, 64
    config.train.epochs, config.train.steps_per_epoch, config.train.skeleton_images = 1, 4, 0
    out = run_demo(tmp_path, num_train=48, num_val=16, kptransfer=True, kptransfer_epochs=1, config=config,
                   kptransfer_steps=2)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary.keys() >= {"mean_pckh", "per_joint_pckh", "baseline_mean_pckh", "savedmodel_dir", "tensorboard_dir",
                              "skeleton_png", "kptransfer", "seconds", "per_group_pckh", "baseline_per_group_pckh",
                              "train_workdir", "records_dir"}
    groups = {"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"}
    assert set(summary["per_group_pckh"]) == set(summary["baseline_per_group_pckh"]) == groups
    assert set(summary["kptransfer"]["arms"]) == {"random", "transfer", "frozen"}
    assert (tmp_path / "skeleton.png").is_file() and out["records_dir"] == summary["records_dir"]
    printed = capsys.readouterr().out
    assert "6/6 KPTransfer" in printed and "s to go" in printed

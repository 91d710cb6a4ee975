"""The KPTransfer experiment end to end (--quick, shrunk further): a two-step add-in chain on embedded data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_two_step_chain_runs_end_to_end_with_quick(tmp_path, tmp_path_factory):
    from data_prep.embedded import ensure_embedded_dataset

    records = ensure_embedded_dataset(tmp_path_factory.mktemp("kpt_data"), num_train=96, num_val=24, seed=0,
                                      input_size=64, num_workers=2, progress=False)
    steps = "('torso_head','torso_head+shoulders','torso_head+shoulders+elbows')"
    done = subprocess.run(
        [sys.executable, "-m", "kpt_tf.experiments.kptransfer", "--config", "configs/kptransfer_add_in_chain.py",
         f"--config.experiment.steps={steps}", "--config.quick.seeds=(0,)", "--config.quick.source_epochs=2",
         "--config.quick.target_epochs=2", "--config.quick.steps_per_epoch=6", "--config.quick.input_size=64",
         "--config.quick.depth=1", "--config.quick.channels=16", f"--config.data.dir={records}",
         "--quick", "--workdir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert [s["target"] for s in results["steps"]] == ["torso_head+shoulders", "torso_head+shoulders+elbows"]
    for step in results["steps"]:
        assert set(step["arms"]) == {"random", "transfer", "frozen"}
        for arm in step["arms"].values():
            assert len(arm["curve_mean"]) == 2 and len(arm["per_joint"]) == len(step["joints"])
        assert Path(step["plot_png"]).is_file()
    # Step 2 transfers from step 1's transfer arm (same seed), with the shared joints' heads mapped.
    report = json.loads((tmp_path / "step2_torso_head_plus_shoulders_plus_elbows" / "transfer" / "seed0" /
                         "transfer_report.json").read_text())
    assert report["source"].endswith("step1_torso_head_plus_shoulders/transfer/seed0/best.keras")
    assert "right_shoulder" in report["shared_joints"] and "right_elbow" not in report["shared_joints"]
    frozen = json.loads((tmp_path / "step1_torso_head_plus_shoulders" / "frozen" / "seed0" /
                         "transfer_report.json").read_text())
    assert frozen["freeze"] and "stem_conv" in frozen["frozen_layers"]
    table = (tmp_path / "results.md").read_text()
    assert "transfer - random" in table and "**Mean**" in table


@pytest.mark.slow
def test_mi_ranked_sources_are_transferred_from_and_the_prediction_reported(embedded_records, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "kpt_tf.experiments.kptransfer", "--config", "configs/kptransfer_upper_lower.py",
         "--config.experiment.steps=('upper','legs')", "--config.experiment.candidates=('wrists','torso_head')",
         "--config.quick.seeds=(0,)", "--config.quick.source_epochs=1", "--config.quick.target_epochs=1",
         "--config.quick.steps_per_epoch=4", "--config.quick.input_size=64", "--config.quick.depth=1",
         "--config.quick.channels=16", f"--config.data.dir={embedded_records}", "--quick", "--workdir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "source_ranking.json").read_text())
    # torso_head holds the hips, the legs' most informative neighbours; the wrists say little about legs.
    assert (result["best"], result["worst"]) == ("torso_head", "wrists")
    assert set(result["gain_over_random"]) == {"best", "worst"}
    assert result["ranking_predicted_the_gain"] == (result["best_minus_worst"]["mean"] > 0)
    assert result["best_minus_worst"]["seeds"] == ["0"]
    table = (tmp_path / "results.md").read_text()   # one comparison: random, from the best, from the worst
    assert "from_torso_head - from_wrists" in table and "from_wrists - random" in table
    assert (tmp_path / "convergence.png").is_file() and "best - worst" in (tmp_path / "source_ranking.md").read_text()
    assert (tmp_path / "from_worst" / "step1_legs" / "transfer" / "seed0" / "best.keras").is_file()
    assert not (tmp_path / "from_worst" / "step1_legs" / "random").exists()   # random is trained once


@pytest.mark.slow
def test_a_chain_across_data_sets_maps_heads_by_joint_name_and_scores_coco_by_person_box(tmp_path_factory):
    """MPII's 16 joints -> COCO's 17 on the embedded people in both formats (configs/kptransfer_mpii_to_coco.py):
    the transfer arms start from the MPII network with the 12 shared limb joints' heads, the face joints fresh."""
    import math

    from configs.kptransfer_mpii_to_coco import get_config
    from data_prep.embedded import ensure_embedded_dataset
    from kpt_tf.experiments.kptransfer import run_experiment

    data = tmp_path_factory.mktemp("both_layouts")
    dirs = [str(ensure_embedded_dataset(data, num_train=48, num_val=12, seed=0, input_size=64, num_workers=2,
                                        progress=False, layout=layout)) for layout in ("mpii16", "coco17")]
    config = get_config()
    config.data.dir, config.experiment.data_dirs = dirs[0], tuple(dirs)
    q = config.quick
    q.seeds, q.source_epochs, q.target_epochs, q.steps_per_epoch = (0,), 1, 2, 3
    q.input_size, q.depth, q.channels, q.batch_size = 64, 1, 8, 8
    workdir = tmp_path_factory.mktemp("mpii_to_coco")
    results = run_experiment(config, workdir, quick=True, log=lambda *a: None, verbose=0)
    (step,) = results["steps"]
    assert (step["source"], step["target"]) == ("mpii16:all", "coco17:all")
    assert (step["metric"], results["source"]["metric"]) == ("PCK@0.05 of the person box", "PCKh@0.5")
    table = (workdir / "results.md").read_text()
    assert "(PCK@0.05 of the person box, final epoch" in table and results["source"]["joints"] == "mpii16:all"
    assert table.startswith("# KPTransfer: mpii16:all -> coco17:all\n\nSource mpii16:all: best validation mean "
                            "PCKh@0.5 "), table[:200]
    for arm in step["arms"].values():         # COCO validation is person-box PCK: numbers, not NaN
        assert len(arm["per_joint"]) == 17 and all(math.isfinite(v) for v in arm["curve_mean"])
    report = json.loads((workdir / "step1_all" / "transfer" / "seed0" / "transfer_report.json").read_text())
    assert (report["source_layout"], report["target_layout"]) == ("mpii16", "coco17")
    assert len(report["mapped_joints"]) == 12 and "left_wrist" in report["mapped_joints"]
    assert set(report["new_joints"]) == {"nose", "left_eye", "right_eye", "left_ear", "right_ear"}
    assert set(report["dropped_joints"]) == {"pelvis", "thorax", "upper_neck", "head_top"}

    # Carried to another session's empty workdir (bench/kptransfer.py --carry), the finished experiment trains
    # nothing there and reports the same figures.
    from kpt_tf.experiments.kptransfer import feeds_a_later_step
    from kpt_tf.experiments.runs import carry_finished_runs

    carried, elsewhere = tmp_path_factory.mktemp("carried"), tmp_path_factory.mktemp("next_session")
    carry_finished_runs(workdir, carried, lambda run: feeds_a_later_step(run, 2))
    carry_finished_runs(carried, elsewhere, lambda run: feeds_a_later_step(run, 2))
    again = run_experiment(config, elsewhere, quick=True, log=lambda *a: None, verbose=0)
    assert not list(elsewhere.glob("step1_all/*/seed0/*.keras"))       # no arm transferred or trained again
    same = [json.dumps(s["arms"], sort_keys=True) for s in (again["steps"][0], step)]    # NaN == NaN as text
    assert same[0] == same[1]

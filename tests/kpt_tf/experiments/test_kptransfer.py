"""The KPTransfer experiment end to end (--quick, shrunk further): a two-step add-in chain on embedded data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


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
def test_a_two_step_chain_ending_on_another_data_set_runs_end_to_end_and_carries_to_another_session(
        tmp_path_factory):
    """An add-in chain on MPII's people whose last step is COCO's 17 joints on the same people in COCO's format
    (configs/kptransfer_mpii_to_coco.py with three steps): step 2 starts from step 1's transfer arm, its heads mapped
    by joint name across the layouts (the shared joints mapped, the face joints fresh, MPII's own dropped), and COCO
    is scored by person-box PCK. One chain exercises every arm, the chain and the cross-data-set mapping."""
    import math

    from configs.kptransfer_mpii_to_coco import get_config
    from data_prep.embedded import ensure_embedded_dataset
    from kpt_tf.experiments.kptransfer import run_experiment

    data = tmp_path_factory.mktemp("both_layouts")
    mpii, coco = (str(ensure_embedded_dataset(data, num_train=48, num_val=12, seed=0, input_size=64, num_workers=2,
                                              progress=False, layout=layout)) for layout in ("mpii16", "coco17"))
    config = get_config()
    config.experiment.steps = ("torso_head", "torso_head+shoulders", "all")
    config.data.dir, config.experiment.data_dirs = mpii, (mpii, mpii, coco)
    q = config.quick
    q.seeds, q.source_epochs, q.target_epochs, q.steps_per_epoch = (0,), 1, 2, 3
    q.input_size, q.depth, q.channels, q.batch_size = 64, 1, 8, 8
    workdir = tmp_path_factory.mktemp("chain")
    results = run_experiment(config, workdir, quick=True, log=lambda *a: None, verbose=0)
    assert [(s["source"], s["target"]) for s in results["steps"]] == [
        ("mpii16:torso_head", "mpii16:torso_head+shoulders"), ("mpii16:torso_head+shoulders", "coco17:all")]
    assert results["source"]["joints"] == "mpii16:torso_head"
    assert [s["metric"] for s in results["steps"]] == ["PCKh@0.5", "PCK@0.05 of the person box"]
    for step in results["steps"]:
        assert set(step["arms"]) == {"random", "transfer", "frozen"}
        for arm in step["arms"].values():       # COCO validation is person-box PCK: numbers, not NaN
            assert len(arm["curve_mean"]) == 2 and len(arm["per_joint"]) == len(step["joints"])
            assert all(math.isfinite(v) for v in arm["curve_mean"])
        assert Path(step["plot_png"]).is_file()
    table = (workdir / "results.md").read_text()
    assert table.startswith("# KPTransfer: mpii16:torso_head -> mpii16:torso_head+shoulders -> coco17:all\n\n"
                            "Source mpii16:torso_head: best validation mean PCKh@0.5 "), table[:200]
    assert "transfer - random" in table and "**Mean**" in table and "(PCK@0.05 of the person box, final epoch" in table
    frozen = json.loads((workdir / "step1_torso_head_plus_shoulders" / "frozen" / "seed0" /
                         "transfer_report.json").read_text())
    assert frozen["freeze"] and "stem_conv" in frozen["frozen_layers"]
    # Step 2 transfers from step 1's transfer arm (same seed), across the layouts by joint name.
    report = json.loads((workdir / "step2_all" / "transfer" / "seed0" / "transfer_report.json").read_text())
    assert report["source"].endswith("step1_torso_head_plus_shoulders/transfer/seed0/best.keras")
    assert (report["source_layout"], report["target_layout"]) == ("mpii16", "coco17")
    assert set(report["mapped_joints"]) == {"left_shoulder", "right_shoulder", "left_hip", "right_hip"}
    assert {"nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_wrist"} <= set(report["new_joints"])
    assert set(report["dropped_joints"]) == {"pelvis", "thorax", "upper_neck", "head_top"}

    # Carried to another session's empty workdir (bench/kptransfer.py --carry), the finished experiment trains
    # nothing there and reports the same figures.
    from kpt_tf.experiments.kptransfer import feeds_a_later_step
    from kpt_tf.experiments.runs import carry_finished_runs

    carried, elsewhere = tmp_path_factory.mktemp("carried"), tmp_path_factory.mktemp("next_session")
    carry_finished_runs(workdir, carried, lambda run: feeds_a_later_step(run, 3))
    carry_finished_runs(carried, elsewhere, lambda run: feeds_a_later_step(run, 3))
    again = run_experiment(config, elsewhere, quick=True, log=lambda *a: None, verbose=0)

    def networks(root):
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.keras"))

    assert networks(elsewhere) == networks(carried)         # no arm transferred into or trained again
    assert not list(elsewhere.glob("step2_all/*/seed0/*.keras"))    # the last step feeds nothing: no network kept
    same = [json.dumps([s["arms"] for s in r["steps"]], sort_keys=True) for r in (again, results)]  # NaN as text
    assert same[0] == same[1]

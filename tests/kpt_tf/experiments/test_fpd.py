"""The Fast Pose Distillation experiment end to end (--quick): teacher trained and cached, four arms, report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_four_arm_protocol_runs_end_to_end_with_quick(embedded_records, tmp_path):
    def run():
        return subprocess.run(
            [sys.executable, "-m", "kpt_tf.experiments.fpd", "--config", "configs/fpd_demo.py",
             "--config.joints=upper", "--config.quick.input_size=64",
             "--config.quick.depth=1", "--config.quick.teacher_epochs=1", f"--config.data.dir={embedded_records}",
             "--quick", "--workdir", str(tmp_path)],
            cwd=REPO, capture_output=True, text=True, timeout=900)

    done = run()
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["arms"]) == ["gt", "fpd", "gt_continued", "fpd_continued"]
    assert len(results["arms"]["gt"]["curve_mean"]) == 2 and len(results["arms"]["fpd_continued"]["curve_mean"]) == 1
    assert results["arms"]["fpd_continued"]["epoch_offset"] == 2
    # The teacher was trained on all joints and scored on the student's (upper) joints.
    teacher = json.loads((tmp_path / "teacher" / "train_summary.json").read_text())
    assert len(teacher["joints"]) == 16
    assert set(results["teacher_pckh"]["per_joint"]) == set(results["joints"]) and "left_ankle" not in results["joints"]
    assert [(c["arm"], c["reference"]) for c in results["comparisons"]][:2] == [("fpd", "gt"),
                                                                               ("fpd_continued", "gt_continued")]
    fair = results["comparisons"][1]
    gt_c, fpd_c = (results["arms"][a]["per_seed_final"]["0"] for a in ("gt_continued", "fpd_continued"))
    assert fair["per_seed"] == pytest.approx([fpd_c - gt_c])
    assert Path(results["plot_png"]).is_file() and "Fair comparison" in (tmp_path / "results.md").read_text()
    # The distilled arms really distilled; both continuation arms started from the gt student of the same seed.
    import csv
    kd = [row for row in csv.DictReader(open(tmp_path / "fpd_continued" / "seed0" / "metrics.csv"))]
    assert float(kd[0]["loss_kd"]) > 0
    assert "loss_kd" not in next(csv.DictReader(open(tmp_path / "gt_continued" / "seed0" / "metrics.csv")))
    for arm in ("gt_continued", "fpd_continued"):
        init = (tmp_path / arm / "seed0" / "init.keras").read_bytes()
        assert init == (tmp_path / "gt" / "seed0" / "best.keras").read_bytes()
    # A rerun reuses everything (the teacher included): nothing retrains, same results.
    mtime = (tmp_path / "teacher" / "best.keras").stat().st_mtime
    again = run()
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "teacher" / "best.keras").stat().st_mtime == mtime
    assert np.isclose(json.loads((tmp_path / "results.json").read_text())["comparisons"][1]["mean"], fair["mean"])

"""The `python -m kpt_tf.evaluate` CLI and evaluate_files (the MPII files themselves: tests/mpii)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from kpt_tf import mpii
from kpt_tf.evaluate import evaluate_files
from kpt_tf.joints import JOINT_NAMES
from tests.conftest import REPO
from tests.mpii.test_evaluation_files import N, write_gt

# --- evaluate_files and the CLI ------------------------------------------------------------------

def test_evaluate_files_perfect_predictions(tmp_path):
    pos0, _, _ = write_gt(tmp_path / "gt.mat")
    mpii.save_predictions_mat(tmp_path / "p.mat", pos0)
    result = evaluate_files(tmp_path / "gt.mat", tmp_path / "p.mat")
    assert result["hrnet"]["Mean"] == 100.0 and result["official"]["AUC"] == 100.0
    assert result["curve"] == [100.0] * 51


def _run_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "kpt_tf.evaluate", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_json_with_the_agreed_keys(tmp_path):
    pos0, _, _ = write_gt(tmp_path / "gt.mat")
    # People 0, 2, 4 off by (1, 1) px (right), people 1, 3 by (30, 30) px (wrong; head size 34 px).
    preds0 = pos0 + np.where(np.arange(N)[:, None, None] % 2 == 0, 1.0, 30.0)
    mpii.save_predictions_mat(tmp_path / "p.mat", preds0)
    out = tmp_path / "out" / "pckh.json"
    run = _run_cli("--gt", str(tmp_path / "gt.mat"), "--preds", str(tmp_path / "p.mat"), "--json", str(out))
    assert run.returncode == 0, run.stderr
    assert "HRNet/mmpose" in run.stdout and "official MPII toolkit" in run.stdout
    result = json.loads(out.read_text())
    groups = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"]
    assert list(result) == ["hrnet", "bearpaw", "official", "per_joint", "curve"]
    assert list(result["hrnet"]) == groups + ["Mean", "Mean@0.1"]
    assert list(result["bearpaw"]) == groups + ["Mean", "Mean@0.1"]
    assert list(result["official"]) == groups + ["UBody", "Total", "AUC"]
    assert list(result["per_joint"]) == list(JOINT_NAMES)
    assert len(result["curve"]) == 51
    # 14 scored joints x 5 people, less person 0's missing right ankle: 41 of 69 right.
    assert result["hrnet"]["Mean"] == pytest.approx(100 * 41 / 69)


def test_cli_bad_file_exits_2_without_traceback(tmp_path):
    write_gt(tmp_path / "gt.mat")
    scipy.io.savemat(tmp_path / "p.mat", {"preds": np.ones((N + 1, 16, 2))})
    run = _run_cli("--gt", str(tmp_path / "gt.mat"), "--preds", str(tmp_path / "p.mat"))
    assert run.returncode == 2
    assert "p.mat" in run.stderr and "6 people but the ground truth has 5" in run.stderr
    assert "Traceback" not in run.stderr
    run = _run_cli("--gt", str(tmp_path / "gt.mat"))
    assert run.returncode == 2 and "--preds" in run.stderr and "Traceback" not in run.stderr

"""MPII file IO (layouts, 1-based boundary, bad files) and the `python -m kpt_tf.evaluate` CLI."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import scipy.io

from kpt_tf import mpii_io
from kpt_tf.evaluate import evaluate_files
from kpt_tf.joints import JOINT_NAMES

from tests.conftest import REPO, SHARED_MPII, require_shared_mpii

PREDS_DIR = SHARED_MPII / "preds"
N = 5


def _preds0(seed=0):
    return np.random.default_rng(seed).uniform(0, 500, (N, 16, 2))


def _write_gt(path, n=N, seed=1):
    """A small ground truth in the detections_our_format.mat layout (1-based); returns its 0-based data."""
    rng = np.random.default_rng(seed)
    pos0 = rng.uniform(50, 400, (n, 16, 2))
    missing = np.zeros((n, 16), np.uint8)
    missing[0, 0] = 1
    boxes0 = np.stack([pos0[:, 9] - 20, pos0[:, 9] + 20], axis=1)  # [N,2,2] (x1,y1),(x2,y2)
    pos_file = pos0 + 1
    pos_file[missing.astype(bool)] = 0  # how MPII stores a joint that is not annotated
    scipy.io.savemat(path, {"pos_gt_src": pos_file.transpose(1, 2, 0), "jnt_missing": missing.T,
                            "headboxes_src": (boxes0 + 1).transpose(1, 2, 0)})
    return pos0, missing, boxes0


# --- ground truth --------------------------------------------------------------------------------

def test_ground_truth_is_0_based_with_annotated_mask(tmp_path):
    pos0, missing, boxes0 = _write_gt(tmp_path / "gt.mat")
    truth = mpii_io.load_ground_truth(tmp_path / "gt.mat")
    assert truth.positions.shape == (N, 16, 2) and truth.positions.dtype == np.float64
    np.testing.assert_allclose(truth.positions[1:], pos0[1:])
    assert np.isnan(truth.positions[0, 0]).all() and not truth.annotated[0, 0] and truth.annotated[0, 1]
    np.testing.assert_allclose(truth.head_boxes, boxes0)
    np.testing.assert_allclose(truth.head_sizes, np.full(N, 0.6 * np.hypot(40, 40)))


def test_ground_truth_missing_keys_listed(tmp_path):
    scipy.io.savemat(tmp_path / "gt.mat", {"pos_gt_src": np.zeros((16, 2, 3))})
    with pytest.raises(ValueError, match=r"gt\.mat.*jnt_missing, headboxes_src.*found: pos_gt_src"):
        mpii_io.load_ground_truth(tmp_path / "gt.mat")


# --- prediction layouts --------------------------------------------------------------------------

def test_every_prediction_layout_loads_the_same(tmp_path):
    preds0 = _preds0()
    preds1 = preds0 + 1
    scipy.io.savemat(tmp_path / "a.mat", {"preds": preds1})
    scipy.io.savemat(tmp_path / "b.mat", {"pos_pred_src": preds1.transpose(1, 2, 0)})
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f["preds"] = preds1                                   # (N,16,2), as Torch/Python write it
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f["preds"] = preds1.transpose(2, 1, 0)                # (2,16,N), MATLAB-reversed
    with h5py.File(tmp_path / "e.mat", "w") as f:             # a MATLAB -v7.3 .mat of (N,16,2)
        f["preds"] = preds1.transpose(2, 1, 0)
        f["preds"].attrs["MATLAB_class"] = np.bytes_("double")
    mpii_io.save_predictions_mat(tmp_path / "f.mat", preds0)
    for name in ("a.mat", "b.mat", "c.h5", "d.h5", "e.mat", "f.mat"):
        loaded = mpii_io.load_predictions(tmp_path / name, expected_count=N)
        assert loaded.dtype == np.float64, name
        np.testing.assert_allclose(loaded, preds0, rtol=0, atol=1e-9, err_msg=name)


def test_save_predictions_mat_round_trip_and_file_layout(tmp_path):
    preds0 = _preds0(3)
    path = tmp_path / "sub" / "preds.mat"
    mpii_io.save_predictions_mat(path, preds0)
    raw = scipy.io.loadmat(path)
    np.testing.assert_allclose(raw["preds"], preds0 + 1)                         # 1-based (N,16,2)
    np.testing.assert_allclose(raw["pos_pred_src"], (preds0 + 1).transpose(1, 2, 0))  # (16,2,N)
    # +1 then -1 in float64 may move a value by one ulp; nothing more.
    np.testing.assert_allclose(mpii_io.load_predictions(path), preds0, rtol=0, atol=1e-12)


def test_all_reference_prediction_files_load():
    require_shared_mpii()
    files = sorted(PREDS_DIR.iterdir())
    assert len(files) >= 5
    for path in files:
        preds = mpii_io.load_predictions(path, expected_count=2958)
        assert preds.shape == (2958, 16, 2) and np.isfinite(preds).all(), path.name
        # Image pixels: nearly all predictions of the 14 scored joints land inside a generous image frame
        # (pelvis and thorax are left out: tompson.h5 holds junk there, it never predicted them).
        scored = preds[:, [j for j in range(16) if j not in (6, 7)]]
        assert np.mean((scored > -50) & (scored < 2000)) > 0.99, path.name


# --- bad files -----------------------------------------------------------------------------------

@pytest.mark.parametrize("case, pattern", [
    ("wrong_shape", r"bad\.mat.*preds has shape \(5, 14, 2\)"),
    ("wrong_count", r"bad\.mat.*has 5 people but the ground truth has 7"),
    ("nan", r"bad\.mat.*NaN/inf.*non-annotated"),
    ("missing_keys", r"bad\.mat.*no variable 'preds' or 'pos_pred_src'.*found: joints \(5, 16, 2\)"),
    ("directory", r"bad\.mat.*is not a file"),
    ("absent", r"bad\.mat.*does not exist"),
    ("garbage", r"bad\.mat.*neither a MATLAB \.mat nor an HDF5 file"),
    ("disagree", r"bad\.mat.*preds and pos_pred_src hold different predictions"),
])
def test_bad_prediction_files_name_file_and_problem(tmp_path, case, pattern):
    path = tmp_path / "bad.mat"
    preds1 = _preds0() + 1
    if case == "wrong_shape":
        scipy.io.savemat(path, {"preds": preds1[:, :14]})
    elif case in ("wrong_count", "nan"):
        if case == "nan":
            preds1[2, 6] = np.nan
        scipy.io.savemat(path, {"preds": preds1})
    elif case == "missing_keys":
        scipy.io.savemat(path, {"joints": preds1})
    elif case == "directory":
        path.mkdir()
    elif case == "garbage":
        path.write_text("x,y\n1,2\n")
    elif case == "disagree":
        scipy.io.savemat(path, {"preds": preds1, "pos_pred_src": preds1.transpose(1, 2, 0) + 3})
    with pytest.raises(ValueError, match=pattern):
        mpii_io.load_predictions(path, expected_count=7 if case == "wrong_count" else None)


# --- evaluate_files and the CLI ------------------------------------------------------------------

def test_evaluate_files_perfect_predictions(tmp_path):
    pos0, _, _ = _write_gt(tmp_path / "gt.mat")
    mpii_io.save_predictions_mat(tmp_path / "p.mat", pos0)
    result = evaluate_files(tmp_path / "gt.mat", tmp_path / "p.mat")
    assert result["hrnet"]["Mean"] == 100.0 and result["official"]["AUC"] == 100.0
    assert result["curve"] == [100.0] * 51


def _run_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "kpt_tf.evaluate", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_json_with_the_agreed_keys(tmp_path):
    pos0, _, _ = _write_gt(tmp_path / "gt.mat")
    # People 0, 2, 4 off by (1, 1) px (right), people 1, 3 by (30, 30) px (wrong; head size 34 px).
    preds0 = pos0 + np.where(np.arange(N)[:, None, None] % 2 == 0, 1.0, 30.0)
    mpii_io.save_predictions_mat(tmp_path / "p.mat", preds0)
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
    _write_gt(tmp_path / "gt.mat")
    scipy.io.savemat(tmp_path / "p.mat", {"preds": np.ones((N + 1, 16, 2))})
    run = _run_cli("--gt", str(tmp_path / "gt.mat"), "--preds", str(tmp_path / "p.mat"))
    assert run.returncode == 2
    assert "p.mat" in run.stderr and "6 people but the ground truth has 5" in run.stderr
    assert "Traceback" not in run.stderr
    run = _run_cli("--gt", str(tmp_path / "gt.mat"))
    assert run.returncode == 2 and "--preds" in run.stderr and "Traceback" not in run.stderr

"""MPII's evaluation files (kpt_tf.mpii.evaluation_files): layouts, the 1-based boundary, bad files, writers."""

import h5py
import numpy as np
import pytest
import scipy.io

from kpt_tf import mpii
from kpt_tf.joints import MPII_SHORT_NAMES
from kpt_tf.mpii.coords import joint_self_rows
from tests.conftest import SHARED_MPII, require_shared_mpii

PREDS_DIR = SHARED_MPII / "preds"
N = 5


def random_preds0(seed=0):
    return np.random.default_rng(seed).uniform(0, 500, (N, 16, 2))


def write_gt(path, n=N, seed=1):
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
    pos0, missing, boxes0 = write_gt(tmp_path / "gt.mat")
    truth = mpii.load_ground_truth(tmp_path / "gt.mat")
    assert truth.positions.shape == (N, 16, 2) and truth.positions.dtype == np.float64
    np.testing.assert_allclose(truth.positions[1:], pos0[1:])
    assert np.isnan(truth.positions[0, 0]).all() and not truth.annotated[0, 0] and truth.annotated[0, 1]
    np.testing.assert_allclose(truth.head_boxes, boxes0)
    np.testing.assert_allclose(truth.head_sizes, np.full(N, 0.6 * np.hypot(40, 40)))


def test_ground_truth_missing_keys_listed(tmp_path):
    scipy.io.savemat(tmp_path / "gt.mat", {"pos_gt_src": np.zeros((16, 2, 3))})
    with pytest.raises(ValueError, match=r"gt\.mat.*jnt_missing, headboxes_src.*found: pos_gt_src"):
        mpii.load_ground_truth(tmp_path / "gt.mat")


# --- prediction layouts --------------------------------------------------------------------------

def test_every_prediction_layout_loads_the_same(tmp_path):
    preds0 = random_preds0()
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
    mpii.save_predictions_mat(tmp_path / "f.mat", preds0)
    for name in ("a.mat", "b.mat", "c.h5", "d.h5", "e.mat", "f.mat"):
        loaded = mpii.load_predictions(tmp_path / name, expected_count=N)
        assert loaded.dtype == np.float64, name
        np.testing.assert_allclose(loaded, preds0, rtol=0, atol=1e-9, err_msg=name)


def test_save_predictions_mat_round_trip_and_file_layout(tmp_path):
    preds0 = random_preds0(3)
    path = tmp_path / "sub" / "preds.mat"
    mpii.save_predictions_mat(path, preds0)
    raw = scipy.io.loadmat(path)
    np.testing.assert_allclose(raw["preds"], preds0 + 1)                         # 1-based (N,16,2)
    np.testing.assert_allclose(raw["pos_pred_src"], (preds0 + 1).transpose(1, 2, 0))  # (16,2,N)
    # +1 then -1 in float64 may move a value by one ulp; nothing more.
    np.testing.assert_allclose(mpii.load_predictions(path), preds0, rtol=0, atol=1e-12)


def test_all_reference_prediction_files_load():
    require_shared_mpii()
    files = sorted(PREDS_DIR.iterdir())
    assert len(files) >= 5
    for path in files:
        preds = mpii.load_predictions(path, expected_count=2958)
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
    preds1 = random_preds0() + 1
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
        mpii.load_predictions(path, expected_count=7 if case == "wrong_count" else None)


# --- the generator's ground-truth writer ---------------------------------------------------------

def test_ground_truth_writer_round_trips_through_the_reader(tmp_path):
    rng = np.random.default_rng(5)
    pos0 = rng.uniform(0, 400, (N, 16, 2))
    pos0[1, 9] = [120.5, -1.0]                      # annotated on the top image row (1-based y = 0)
    annotated = np.ones((N, 16), bool)
    annotated[0, [0, 15]] = False
    visible = annotated & (rng.random((N, 16)) < 0.7)
    rows = [joint_self_rows(pos0[k], annotated[k], visible[k]) for k in range(N)]
    boxes0 = np.stack([pos0[:, 9] - 20, pos0[:, 9] + 25], axis=1)
    path = tmp_path / "gt_val.mat"
    mpii.save_ground_truth_mat(path, rows, mpii.to_one_based(boxes0))
    truth = mpii.load_ground_truth(path)
    assert len(truth) == N
    np.testing.assert_array_equal(truth.annotated, annotated)
    np.testing.assert_allclose(truth.positions[annotated], pos0[annotated], atol=5e-4)   # rows hold 3 decimals
    assert np.isnan(truth.positions[~annotated]).all()
    np.testing.assert_allclose(truth.head_boxes, boxes0, atol=1e-9)
    raw = scipy.io.loadmat(path)
    assert raw["jnt_missing"].dtype == np.uint8 and (raw["pos_gt_src"][:, :, 0][[0, 15]] == 0).all()
    assert [str(c[0]) for c in raw["dataset_joints"][0]] == list(MPII_SHORT_NAMES)
    first = path.read_bytes()
    mpii.save_ground_truth_mat(path, rows, mpii.to_one_based(boxes0))
    assert path.read_bytes() == first                # no time stamp: same people, same bytes
    with pytest.raises(ValueError, match="head boxes"):
        mpii.save_ground_truth_mat(path, rows, mpii.to_one_based(boxes0[:-1]))

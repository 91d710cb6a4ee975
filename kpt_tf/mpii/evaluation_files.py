"""Reading and writing MPII's own evaluation files (ground truth and predictions).

This module is the file boundary: MPII's .mat/.h5 files hold 1-based pixel coordinates, everything
returned from here is 0-based (pixel centres at integers) and everything written here is 1-based again.
The conversion happens only in `kpt_tf.mpii.coords` (`from_one_based` / `to_one_based`).

Layouts accepted (MATLAB order, i.e. as `scipy.io.loadmat` shows them):
  ground truth  `pos_gt_src` (16,2,N), `jnt_missing` (16,N; 1 = not annotated), `headboxes_src` (2,2,N)
  predictions   `preds` (N,16,2) or (2,16,N), or the official toolkit's `pos_pred_src` (16,2,N)
HDF5 files (.h5, or .mat saved with MATLAB -v7.3) are read with h5py; a dataset MATLAB wrote
(attribute MATLAB_class) is transposed back to MATLAB order first, other HDF5 datasets are taken as stored.
When a shape fits two layouts (only possible with 2 or 16 people) the first one listed above wins.

Predictions must be finite everywhere, non-annotated joints included: a model always predicts every joint,
so a NaN means the exporter went wrong. (The official toolkit would silently count a NaN as a miss.)
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path
from typing import Optional

import numpy as np

from kpt_tf.joints import MPII_SHORT_NAMES, NUM_JOINTS
from kpt_tf.metrics.pckh import head_sizes_from_boxes
from kpt_tf.mpii.coords import from_one_based, parse_joint_self, to_one_based

_GT_KEYS = ("pos_gt_src", "jnt_missing", "headboxes_src")
_PRED_KEYS = ("preds", "pos_pred_src")


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """MPII evaluation ground truth, 0-based.

    positions: [N,16,2] float64, NaN where the joint is not annotated.
    annotated: [N,16] bool (= 1 - jnt_missing; evaluation never looks at visibility).
    head_boxes: [N,2,2] float64, per person [[x1,y1],[x2,y2]].
    """

    positions: np.ndarray
    annotated: np.ndarray
    head_boxes: np.ndarray
    source: str = ""

    @property
    def head_sizes(self) -> np.ndarray:
        """[N] PCKh normaliser: 0.6 x the head-box diagonal."""
        return head_sizes_from_boxes(self.head_boxes)

    def __len__(self) -> int:
        return int(self.positions.shape[0])


# --- reading ---------------------------------------------------------------------------------------

def _check_is_file(path: Path, what: str) -> None:
    if not path.exists():
        raise ValueError(f"{what} file {str(path)!r} does not exist")
    if not path.is_file():
        raise ValueError(f"{what} path {str(path)!r} is not a file")


def _read_arrays(path: Path, what: str) -> dict[str, np.ndarray]:
    """Top-level numeric arrays of a .mat (v5 or v7.3) or .h5 file, in MATLAB dimension order."""
    _check_is_file(path, what)
    import h5py

    try:
        is_hdf5 = h5py.is_hdf5(str(path))
    except OSError as err:
        raise ValueError(f"{what} file {str(path)!r} cannot be read: {err}") from None
    if is_hdf5:
        arrays = {}
        try:
            with h5py.File(path, "r") as handle:
                for key, item in handle.items():
                    if not isinstance(item, h5py.Dataset) or item.dtype.kind not in "biuf":
                        continue
                    value = item[()]
                    if "MATLAB_class" in item.attrs:  # MATLAB -v7.3 stores dimensions reversed
                        value = np.transpose(value)
                    arrays[key] = np.asarray(value)
        except OSError as err:
            raise ValueError(f"{what} file {str(path)!r} is a damaged HDF5 file: {err}") from None
        return arrays

    import scipy.io

    try:
        content = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises ValueError, TypeError, MatReadError... on foreign bytes
        raise ValueError(
            f"{what} file {str(path)!r} is neither a MATLAB .mat nor an HDF5 file ({type(err).__name__}: {err})"
        ) from None
    return {k: v for k, v in content.items()
            if not k.startswith("__") and isinstance(v, np.ndarray) and v.dtype.kind in "biuf"}


def _missing_keys_error(path: Path, what: str, wanted: str, arrays: dict) -> ValueError:
    found = ", ".join(f"{k} {tuple(v.shape)}" for k, v in sorted(arrays.items())) or "none"
    return ValueError(f"{what} file {str(path)!r} has no {wanted}; numeric arrays found: {found}")


def _check_finite(path: Path, what: str, key: str, values: np.ndarray, note: str = "") -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{what} file {str(path)!r}: {key} has {int(bad.sum())} NaN/inf values (first at index {first}){note}")


def load_ground_truth(path) -> GroundTruth:
    """Ground truth from a .mat in the layout of detections_our_format.mat / HRNet's gt_valid.mat."""
    path = Path(path)
    what = "ground-truth"
    arrays = _read_arrays(path, what)
    missing = [k for k in _GT_KEYS if k not in arrays]
    if missing:
        raise _missing_keys_error(path, what, "variable(s) " + ", ".join(missing), arrays)
    pos, jnt_missing, boxes = (arrays[k] for k in _GT_KEYS)
    count = pos.shape[-1] if pos.ndim == 3 else -1
    expected = {"pos_gt_src": (NUM_JOINTS, 2, count), "jnt_missing": (NUM_JOINTS, count),
                "headboxes_src": (2, 2, count)}
    for key, shape in expected.items():
        if count < 1 or arrays[key].shape != shape:
            raise ValueError(
                f"{what} file {str(path)!r}: {key} has shape {tuple(arrays[key].shape)}, expected "
                f"{tuple('N' if s == count else s for s in shape)} with N = people "
                f"(pos_gt_src (16,2,N), jnt_missing (16,N), headboxes_src (2,2,N))")
    if not np.isin(jnt_missing, (0, 1)).all():
        raise ValueError(f"{what} file {str(path)!r}: jnt_missing holds values other than 0 and 1")

    annotated = (1 - jnt_missing.astype(np.int64)).T.astype(bool)   # [N,16]
    positions = from_one_based(np.transpose(pos, (2, 0, 1)))      # [N,16,2]
    _check_finite(path, what, "pos_gt_src", positions[annotated], " at annotated joints")
    positions[~annotated] = np.nan
    head_boxes = from_one_based(np.transpose(boxes, (2, 0, 1)))    # [N,2,2]: [[x1,y1],[x2,y2]]
    _check_finite(path, what, "headboxes_src", head_boxes)
    truth = GroundTruth(positions=positions, annotated=annotated, head_boxes=head_boxes, source=str(path))
    degenerate = np.flatnonzero(truth.head_sizes <= 0)
    if degenerate.size:
        raise ValueError(f"{what} file {str(path)!r}: {degenerate.size} head boxes have zero size "
                         f"(first: person {int(degenerate[0])})")
    return truth


def _predictions_in_file_order(path: Path, what: str, arrays: dict) -> np.ndarray:
    """[N,16,2] in file coordinates, from whichever accepted variable and layout the file holds."""
    found = [k for k in _PRED_KEYS if k in arrays]
    if not found:
        raise _missing_keys_error(path, what, "variable 'preds' or 'pos_pred_src'", arrays)
    candidates = []
    for key in found:
        value = arrays[key]
        shape = value.shape
        if key == "preds" and shape[1:] == (NUM_JOINTS, 2) and len(shape) == 3:
            candidates.append((key, value))
        elif key == "preds" and len(shape) == 3 and shape[:2] == (2, NUM_JOINTS):
            candidates.append((key, np.transpose(value, (2, 1, 0))))    # MATLAB-reversed (2,16,N)
        elif key == "pos_pred_src" and len(shape) == 3 and shape[:2] == (NUM_JOINTS, 2):
            candidates.append((key, np.transpose(value, (2, 0, 1))))    # official (16,2,N)
        else:
            layouts = "(N,16,2) or (2,16,N)" if key == "preds" else "(16,2,N)"
            raise ValueError(f"{what} file {str(path)!r}: {key} has shape {tuple(shape)}, expected {layouts} "
                             f"for N people and the 16 MPII joints")
    (key, preds), others = candidates[0], candidates[1:]
    for other_key, other in others:
        # Files written by save_predictions_mat carry both; a disagreement would make the file ambiguous.
        if other.shape != preds.shape or not np.allclose(other, preds, equal_nan=True):
            raise ValueError(f"{what} file {str(path)!r}: {key} and {other_key} hold different predictions")
    return preds


def load_predictions(path, expected_count: Optional[int] = None) -> np.ndarray:
    """Predictions [N,16,2] float64, 0-based, from a .mat or .h5 in any accepted layout."""
    path = Path(path)
    what = "predictions"
    preds = _predictions_in_file_order(path, what, _read_arrays(path, what))
    if preds.shape[0] < 1:
        raise ValueError(f"{what} file {str(path)!r} holds no people")
    if expected_count is not None and preds.shape[0] != expected_count:
        raise ValueError(f"{what} file {str(path)!r} has {preds.shape[0]} people but the ground truth has "
                         f"{expected_count}; predictions must list the same people in the same order")
    _check_finite(path, what, "the predictions", preds,
                  "; a model predicts every joint, so NaN is refused even at non-annotated joints")
    return from_one_based(preds)


# --- writing ---------------------------------------------------------------------------------------

def save_predictions_mat(path, preds0: np.ndarray) -> None:
    """Write 0-based predictions [N,16,2] as a MATLAB v5 .mat, 1-based.

    Holds `preds` (N,16,2), read by bearpaw's / HRNet's eval scripts and anibali/eval-mpii-pose, and
    `pos_pred_src` (16,2,N), the official toolkit's layout.
    """
    preds0 = np.asarray(preds0, dtype=np.float64)
    if preds0.ndim != 3 or preds0.shape[1:] != (NUM_JOINTS, 2):
        raise ValueError(f"predictions to write to {str(path)!r} have shape {preds0.shape}, expected (N,16,2)")
    if not np.isfinite(preds0).all():
        raise ValueError(f"predictions to write to {str(path)!r} contain NaN/inf")
    import scipy.io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    preds1 = to_one_based(preds0)
    scipy.io.savemat(str(path), {"preds": preds1, "pos_pred_src": np.transpose(preds1, (1, 2, 0))},
                     do_compression=True)


# The .mat text header carries a creation time; a fixed one keeps equal inputs byte-identical. (The text is
# the one the generator has always written, so that its output stays byte-identical across versions.)
_GT_MAT_HEADER = b"MATLAB 5.0 MAT-file, written by kpt_tf data_prep.synth_mpii"
_MAT_HEADER_BYTES = 116


def save_ground_truth_mat(path, joint_self, head_boxes) -> None:
    """Write validation ground truth in the layout of detections_our_format.mat (what load_ground_truth reads).

    Takes the people as annotations.json stores them, so nothing is converted twice: `joint_self` [N,16,3]
    rows [x, y, is_visible] in 1-based pixels (not annotated = x = y = 0, kpt_tf.mpii.coords) and
    `head_boxes` [N,2,2] [[x1,y1],[x2,y2]] in 1-based pixels. Writes `pos_gt_src` (16,2,N, 0 where not
    annotated), `jnt_missing` (16,N uint8), `headboxes_src` (2,2,N) and `dataset_joints`; the bytes depend on
    the inputs only (written atomically).
    """
    n = len(joint_self)
    if len(head_boxes) != n:
        raise ValueError(f"ground truth to write to {str(path)!r}: {n} joint_self entries but "
                         f"{len(head_boxes)} head boxes")
    pos = np.zeros((NUM_JOINTS, 2, n))
    missing = np.zeros((NUM_JOINTS, n), np.uint8)
    boxes = np.zeros((2, 2, n))
    for i, (rows, box) in enumerate(zip(joint_self, head_boxes)):
        rows = np.asarray(rows, np.float64)
        _, annotated, _ = parse_joint_self(rows)
        pos[:, :, i] = np.where(annotated[:, None], rows[:, :2], 0.0)
        missing[:, i] = ~annotated
        boxes[:, :, i] = np.asarray(box, np.float64)
    names = np.empty((1, NUM_JOINTS), dtype=object)
    for k, short in enumerate(MPII_SHORT_NAMES):
        names[0, k] = np.array([short])
    import scipy.io

    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"pos_gt_src": pos, "jnt_missing": missing, "headboxes_src": boxes,
                              "dataset_joints": names})
    data = bytearray(buffer.getvalue())
    data[:_MAT_HEADER_BYTES] = _GT_MAT_HEADER.ljust(_MAT_HEADER_BYTES, b" ")
    path = Path(path)
    tmp = path.with_suffix(".mat.tmp")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)

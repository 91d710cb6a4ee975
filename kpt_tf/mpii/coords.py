"""MPII's two coordinate rules, each stated once: 1-based pixels, and "not annotated" = (0, 0) in joint_self.

MPII's files (.mat ground truth and predictions, the release .mat, mpii_annotations.json) count pixels from 1;
the project counts from 0 (pixel centres at integers). Every conversion at a file boundary goes through
`from_one_based` / `to_one_based`.

A `joint_self` row of mpii_annotations.json (and of the generator's annotations.json) is `[x, y, is_visible]`
in 1-based pixels; a joint that is not annotated is stored as x = y = 0. An annotated joint may have x = 0 or
y = 0 alone (nine head tops of the real file sit on the top image row), and is_visible 0 when occluded.
`joint_self_rows` writes rows by that rule and `parse_joint_self` reads them.
"""

from __future__ import annotations

import numpy as np

from kpt_tf.joints import NUM_JOINTS

# MPII files count pixels from 1; the project counts from 0.
MPII_COORD_OFFSET = 1.0
_NOT_ANNOTATED_XY = (0.0, 0.0)


def from_one_based(values) -> np.ndarray:
    """MPII's 1-based pixel coordinates -> the project's 0-based ones (pixel centres at integers)."""
    return np.asarray(values, dtype=np.float64) - MPII_COORD_OFFSET


def to_one_based(values) -> np.ndarray:
    """The project's 0-based pixel coordinates -> MPII's 1-based ones (for files in MPII's formats)."""
    return np.asarray(values, dtype=np.float64) + MPII_COORD_OFFSET


def joint_self_rows(joints, annotated, visible) -> list[list[float]]:
    """0-based joints (16, 2) + flags -> joint_self rows [[x, y, is_visible]] x 16, 1-based, 3 decimals.

    A joint that is not annotated is written [0, 0, 0].
    """
    rows = []
    for j in range(NUM_JOINTS):
        if annotated[j]:
            x, y = to_one_based(joints[j])
            rows.append([round(float(x), 3), round(float(y), 3), 1.0 if visible[j] else 0.0])
        else:
            rows.append([*_NOT_ANNOTATED_XY, 0.0])
    return rows


def parse_joint_self(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """joint_self rows [x, y, is_visible] (1-based) -> (joints (16, 2) 0-based, annotated (16,), visible (16,)).

    joints are 0 where not annotated; annotated and visible are bool, visible implies annotated.
    Raises ValueError when the rows are not 16 x 3.
    """
    rows = np.asarray(rows, np.float64)
    if rows.shape != (NUM_JOINTS, 3):
        raise ValueError(f"joint_self has shape {rows.shape}, expected ({NUM_JOINTS}, 3)")
    annotated = ~((rows[:, 0] == _NOT_ANNOTATED_XY[0]) & (rows[:, 1] == _NOT_ANNOTATED_XY[1]))
    joints = np.where(annotated[:, None], from_one_based(rows[:, :2]), 0.0)
    visible = annotated & (rows[:, 2] > 0)
    return joints, annotated, visible

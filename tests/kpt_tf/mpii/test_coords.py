"""The two coordinate rules of MPII's files (kpt_tf.mpii.coords), each defined once."""

import numpy as np
import pytest

from kpt_tf import mpii
from kpt_tf.mpii.coords import MPII_COORD_OFFSET, joint_self_rows, parse_joint_self


def test_one_based_round_trip():
    points0 = np.random.default_rng(0).uniform(-50, 2000, (7, 16, 2))
    assert MPII_COORD_OFFSET == 1.0
    np.testing.assert_array_equal(mpii.to_one_based(np.zeros(2)), [1.0, 1.0])   # pixel centre 0 is MPII's 1
    np.testing.assert_array_equal(mpii.from_one_based([1.0, 1.0]), [0.0, 0.0])
    back = mpii.from_one_based(mpii.to_one_based(points0))
    assert back.dtype == np.float64 and back.shape == points0.shape
    np.testing.assert_allclose(back, points0, rtol=0, atol=1e-12)


def test_joint_self_round_trip_keeps_annotated_and_unannotated_apart():
    joints = np.random.default_rng(1).uniform(5, 300, (16, 2))
    joints[9] = [42.5, -1.0]      # annotated on the top image row: 1-based y = 0
    joints[10] = [-1.0, 17.25]    # annotated on the left column: 1-based x = 0
    joints[3] = [-1.0, -1.0]      # not annotated: written (0, 0) whatever it holds
    annotated = np.ones(16, bool)
    annotated[[0, 5, 3]] = False
    visible = annotated.copy()
    visible[[1, 9]] = False       # occluded but annotated
    rows = joint_self_rows(joints, annotated, visible)
    assert len(rows) == 16 and all(len(r) == 3 for r in rows)
    assert rows[0] == rows[5] == rows[3] == [0.0, 0.0, 0.0]
    assert rows[9][1] == 0.0 and rows[10][0] == 0.0 and rows[9][2] == 0.0 and rows[10][2] == 1.0
    back, back_annotated, back_visible = parse_joint_self(rows)
    assert back_annotated.dtype == bool and back_visible.dtype == bool
    np.testing.assert_array_equal(back_annotated, annotated)
    np.testing.assert_array_equal(back_visible, visible)
    np.testing.assert_allclose(back[annotated], joints[annotated], atol=5e-4)   # 3 decimals in the file
    assert (back[~annotated] == 0).all()
    np.testing.assert_allclose(back[[9, 10]], [[42.5, -1.0], [-1.0, 17.25]])


def test_parse_joint_self_visibility_needs_annotation_and_shape_is_checked():
    rows = [[0.0, 0.0, 1.0]] + [[3.0, 4.0, 0.0]] * 15       # a 'visible' flag on an unannotated joint
    _, annotated, visible = parse_joint_self(rows)
    assert not annotated[0] and not visible[0] and annotated[1:].all() and not visible.any()
    with pytest.raises(ValueError, match=r"joint_self has shape \(15, 3\)"):
        parse_joint_self(rows[:15])

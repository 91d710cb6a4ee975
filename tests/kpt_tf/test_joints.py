"""Joint conventions (kpt_tf/joints.py, ../shared/CONVENTIONS.md): order, flip pairs, subsets, expressions."""

from __future__ import annotations

import pytest

from kpt_tf.joints import (
    FLIP_PAIRS,
    JOINT_NAMES,
    MPII_SHORT_NAMES,
    NUM_JOINTS,
    JointSubset,
    flip_partner,
    full_flip_permutation,
)


def test_mpii_order_and_flip_pairs():
    assert NUM_JOINTS == len(JOINT_NAMES) == len(MPII_SHORT_NAMES) == 16
    assert JOINT_NAMES[0] == "right_ankle" and JOINT_NAMES[6] == "pelvis" and JOINT_NAMES[15] == "left_wrist"
    for right, left in FLIP_PAIRS:
        assert JOINT_NAMES[right].replace("right", "left") == JOINT_NAMES[left]
        assert flip_partner(right) == left and flip_partner(left) == right
    perm = full_flip_permutation()
    assert sorted(perm) == list(range(16)) and [perm[p] for p in perm] == list(range(16))
    assert all(perm[i] == i for i in (6, 7, 8, 9))


def test_named_subsets_and_short_names():
    upper, lower = JointSubset.parse("upper"), JointSubset.parse("lower")
    assert set(upper.names) | set(lower.names) == set(JOINT_NAMES)
    assert not set(upper.names) & set(lower.names)
    assert JointSubset.parse("rwri,lwri").names == ("right_wrist", "left_wrist")
    assert JointSubset.parse("wrists").names == ("right_wrist", "left_wrist")
    assert "left_wrist" not in JointSubset.parse("all-wrists").names
    assert len(JointSubset.parse("torso_head+shoulders")) == len(JointSubset.parse("torso_head")) + 2


def test_flip_permutation_only_for_flip_closed_subsets():
    arms = JointSubset.parse("arms")
    assert arms.is_flip_closed
    perm = arms.flip_permutation()
    assert arms.names[perm[arms.position("right_wrist")]] == "left_wrist"
    left = JointSubset.parse("left")
    assert not left.is_flip_closed
    with pytest.raises(ValueError):
        left.flip_permutation()


def test_bad_names_are_refused_by_name():
    with pytest.raises(ValueError, match="left_wirst"):
        JointSubset.parse("left_wirst")


def test_channels_of_picks_another_heads_channels_by_joint_name():
    teacher, student = JointSubset.parse("all"), JointSubset.parse("wrists,head_top")
    assert teacher.channels_of(student) == (10, 15, 9)
    upper = JointSubset.parse("upper")
    assert [upper.names[c] for c in upper.channels_of(JointSubset.parse("arms"))] == list(
        JointSubset.parse("arms").names)
    with pytest.raises(ValueError, match="lack right_ankle, right_knee"):
        upper.channels_of(JointSubset.parse("right"))

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


# The MPII constants as literals, copied from kpt_tf/joints.py before they were derived from mpii16.json: the
# reference that MPII behaviour stays byte-identical.
REFERENCE_JOINT_NAMES = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist",
)
REFERENCE_MPII_SHORT_NAMES = (
    "rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head",
    "rwri", "relb", "rsho", "lsho", "lelb", "lwri",
)
REFERENCE_FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
REFERENCE_SKELETON = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
    (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15),
)
REFERENCE_PCKH_GROUPS = (
    ("Head", (9,)), ("Shoulder", (12, 13)), ("Elbow", (11, 14)), ("Wrist", (10, 15)),
    ("Hip", (2, 3)), ("Knee", (1, 4)), ("Ankle", (0, 5)),
)
REFERENCE_EXCLUDED_FROM_MEAN = (6, 7)
REFERENCE_GROUPS = {
    "ankles": (0, 5), "knees": (1, 4), "hips": (2, 3), "wrists": (10, 15), "elbows": (11, 14),
    "shoulders": (12, 13),
}
REFERENCE_NAMED_SUBSETS = {
    "all": tuple(range(16)),
    "upper": (7, 8, 9, 10, 11, 12, 13, 14, 15),
    "lower": (0, 1, 2, 3, 4, 5, 6),
    "left": (3, 4, 5, 13, 14, 15),
    "right": (0, 1, 2, 10, 11, 12),
    "arms": (10, 11, 12, 13, 14, 15),
    "legs": (0, 1, 2, 3, 4, 5),
    "torso_head": (2, 3, 6, 7, 8, 9),
}
REFERENCE_FULL_FLIP_PERMUTATION = (5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10)


def test_mpii_constants_derived_from_the_layout_equal_the_former_literals():
    from kpt_tf import joints

    assert joints.NUM_JOINTS == 16 and isinstance(joints.NUM_JOINTS, int)
    assert joints.JOINT_NAMES == REFERENCE_JOINT_NAMES and type(joints.JOINT_NAMES) is tuple
    assert joints.MPII_SHORT_NAMES == REFERENCE_MPII_SHORT_NAMES and type(joints.MPII_SHORT_NAMES) is tuple
    assert joints.FLIP_PAIRS == REFERENCE_FLIP_PAIRS and all(type(p) is tuple for p in joints.FLIP_PAIRS)
    assert joints.SKELETON == REFERENCE_SKELETON and all(type(e) is tuple for e in joints.SKELETON)
    assert joints.PCKH_GROUPS == REFERENCE_PCKH_GROUPS
    assert all(type(g) is tuple and type(g[1]) is tuple for g in joints.PCKH_GROUPS)
    assert joints.EXCLUDED_FROM_MEAN == REFERENCE_EXCLUDED_FROM_MEAN
    assert joints.NAMED_SUBSETS == REFERENCE_NAMED_SUBSETS and type(joints.NAMED_SUBSETS) is dict
    assert list(joints.NAMED_SUBSETS) == list(REFERENCE_NAMED_SUBSETS)     # the order error messages list them in
    assert joints.ALL == JointSubset(REFERENCE_NAMED_SUBSETS["all"], "all")
    assert joints.ALL.layout.name == "mpii16"
    assert full_flip_permutation() == REFERENCE_FULL_FLIP_PERMUTATION
    assert [flip_partner(i) for i in range(16)] == list(REFERENCE_FULL_FLIP_PERMUTATION)


def test_every_mpii_spec_parses_to_the_same_indices_and_name_as_before():
    for name, indices in REFERENCE_NAMED_SUBSETS.items():
        subset = JointSubset.parse(name)
        assert (subset.indices, subset.name) == (indices, name)
        assert JointSubset.parse(f"mpii16:{name}").indices == indices
    for group, indices in REFERENCE_GROUPS.items():
        assert JointSubset.parse(group).indices == indices
    for i, (long, short) in enumerate(zip(REFERENCE_JOINT_NAMES, REFERENCE_MPII_SHORT_NAMES)):
        for alias in (long, short, long.replace("_", " "), long.upper()):
            assert JointSubset.parse(alias).indices == (i,), alias
    assert JointSubset.parse("neck").indices == (8,) and JointSubset.parse("head").indices == (9,)
    expressions = {"all-wrists": (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14),
                   "torso_head+shoulders": (2, 3, 6, 7, 8, 9, 12, 13), "upper-arms+knees": (1, 4, 7, 8, 9),
                   "lower+rwri": (0, 1, 2, 3, 4, 5, 6, 10), "legs-left": (0, 1, 2)}
    for spec, indices in expressions.items():
        assert (JointSubset.parse(spec).indices, JointSubset.parse(spec).name) == (indices, spec)
    listed = JointSubset.parse(["lwri", "knees", "head top"])
    assert listed.indices == (15, 1, 4, 9) and listed.name == "lwri,knees,head top"
    assert JointSubset((15, 0)).name == "left_wrist,right_ankle"


def test_mpii_refusals_read_as_before():
    with pytest.raises(ValueError, match="joint 'right_wrist' listed twice"):
        JointSubset.parse("wrists,rwri")
    with pytest.raises(ValueError, match="'upper-all' is empty"):
        JointSubset.parse("upper-all")
    with pytest.raises(ValueError, match=r"\(or MPII short names rank, rkne, .*\), groups ankles, knees, .* subsets "
                                         r"all, upper, lower, left, right, arms, legs, torso_head"):
        JointSubset.parse("wrist")
    with pytest.raises(ValueError, match="maps left_hip, left_knee, left_ankle, left_shoulder, left_elbow, "
                                         "left_wrist to joints outside the subset \\(right_hip, right_knee"):
        JointSubset.parse("left").flip_permutation()

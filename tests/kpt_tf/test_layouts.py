"""Keypoint layouts as data (kpt_tf/layouts): the shipped files load, COCO's match the reference implementation's
order, sigmas and skeleton, malformed files are refused by name, and subsets read against either layout."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest

from kpt_tf import layouts
from kpt_tf.joints import JointSubset
from kpt_tf.layouts import LAYOUTS, KeypointLayout, LayoutError, layout, load_layout

REPO = Path(__file__).resolve().parents[2]

# The person category of COCO's person_keypoints_*.json (its skeleton is 1-based there).
COCO_KEYPOINTS = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]
COCO_SKELETON_1_BASED = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10], [9, 11],
    [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]
# pycocotools/cocoeval.py, Params.setKpParams.
COCO_OKS_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89,
                            .89]) / 10.0
SHARED_LIMB_JOINTS = {f"{side}_{part}" for side in ("left", "right")
                      for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")}


def test_shipped_layouts_load_once_and_name_themselves():
    assert LAYOUTS == ("mpii16", "coco17")
    for name in LAYOUTS:
        loaded = layout(name)
        assert loaded.name == name and layout(name) is loaded
        assert loaded == load_layout(layouts.DIRECTORY / f"{name}.json")
    assert len(layout("mpii16").joints) == 16 and len(layout("coco17").joints) == 17
    assert layout("mpii16").oks_sigmas is None
    with pytest.raises(ValueError, match="unknown keypoint layout 'coco18'"):
        layout("coco18")


def test_coco_order_skeleton_and_sigmas_are_cocos():
    coco = layout("coco17")
    assert list(coco.joints) == COCO_KEYPOINTS
    assert [list(edge) for edge in coco.skeleton_indices] == [[a - 1, b - 1] for a, b in COCO_SKELETON_1_BASED]
    np.testing.assert_array_equal(np.array(coco.oks_sigmas), COCO_OKS_SIGMAS)
    assert coco.excluded_from_mean == ()
    assert [row for row, _ in coco.rows] == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"]


def test_each_normaliser_names_its_figure_for_reports():
    assert set(layouts.PCK_LABELS) == set(layouts.PCK_NORMALIZERS)
    assert (layout("mpii16").pck_label, layout("coco17").pck_label) == ("PCKh@0.5", "PCK@0.05 of the person box")


def test_coco_sigmas_match_pycocotools():
    from pycocotools.cocoeval import COCOeval

    reference = COCOeval(iouType="keypoints").params.kpt_oks_sigmas
    np.testing.assert_array_equal(np.array(layout("coco17").oks_sigmas), reference)


def test_the_layouts_share_the_12_limb_joints_by_name():
    mpii, coco = set(layout("mpii16").joints), set(layout("coco17").joints)
    assert mpii & coco == SHARED_LIMB_JOINTS
    assert coco - mpii == {"nose", "left_eye", "right_eye", "left_ear", "right_ear"}
    assert mpii - coco == {"pelvis", "thorax", "upper_neck", "head_top"}


def test_a_non_editable_install_carries_the_layout_files():
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = package_data["kpt_tf.layouts"]
    for name in LAYOUTS:
        assert any(Path(f"{name}.json").match(p) for p in patterns), name


def _write_layout(tmp_path: Path, change) -> Path:
    data = json.loads((layouts.DIRECTORY / "coco17.json").read_text())
    change(data)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("change, problem", [
    (lambda d: d["flip_pairs"].append(["left_eye", "left_pinky"]), "flip_pairs[8]: unknown joint 'left_pinky'"),
    (lambda d: d["joints"].__setitem__(2, "left_eye"), "joints: 'left_eye' appears twice"),
    (lambda d: d["oks_sigmas"].pop(), "16 sigmas for 17 joints (sigma count mismatch)"),
    (lambda d: d["skeleton"].append(["nose", "nose"]), "skeleton[19]"),
    (lambda d: d["groups"].__setitem__("eyes", ["left_eye", "right_eey"]), "unknown joint 'right_eey'"),
    (lambda d: d["subsets"].__setitem__("all", ["nose"]), "'all'"),
    (lambda d: d["subsets"].__setitem__("nose", ["nose"]), "'nose'"),
    (lambda d: d.pop("rows"), "missing keys ['rows']"),
    (lambda d: d.__setitem__("sigmas", []), "unknown keys ['sigmas']"),
    (lambda d: d.__setitem__("joints", "nose"), "expected a list of names"),
    (lambda d: d.__setitem__("format", "kpt_tf keypoint layout 2"), "format"),
])
def test_a_malformed_layout_file_is_refused_naming_file_and_problem(tmp_path, change, problem):
    path = _write_layout(tmp_path, change)
    with pytest.raises(LayoutError, match=re.escape(str(path))) as refused:
        load_layout(path)
    assert problem in str(refused.value), str(refused.value)


def test_an_unreadable_layout_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "truncated.json"
    path.write_text('{"format": ')
    with pytest.raises(LayoutError, match=re.escape(str(path))):
        load_layout(path)
    with pytest.raises(LayoutError, match=re.escape(str(tmp_path / "absent.json"))):
        load_layout(tmp_path / "absent.json")


def test_an_unchanged_copy_loads(tmp_path):
    assert load_layout(_write_layout(tmp_path, lambda d: None)) == layout("coco17")


def test_coco_subsets_parse_with_a_prefix_or_a_layout_argument():
    no_head = JointSubset.parse("coco17:all-head")
    assert no_head.layout is layout("coco17") and set(no_head.names) == SHARED_LIMB_JOINTS
    assert no_head.indices == tuple(range(5, 17)) and no_head.name == "coco17:all-head"
    assert JointSubset.parse("all-head", layout="coco17").indices == no_head.indices
    assert JointSubset.parse("coco17:head").names == tuple(COCO_KEYPOINTS[:5])
    assert JointSubset.parse("coco17:face").indices == JointSubset.parse("coco17:head").indices
    assert JointSubset.parse("coco17:wrists,nose").names == ("left_wrist", "right_wrist", "nose")
    assert JointSubset.parse("coco17:upper+knees").indices == tuple(range(11)) + (13, 14)
    assert JointSubset.parse("Left Eye, right_ear", layout=layout("coco17")).indices == (1, 4)
    upper, lower = JointSubset.parse("coco17:upper"), JointSubset.parse("coco17:lower")
    assert set(upper.names) | set(lower.names) == set(COCO_KEYPOINTS) and not set(upper.names) & set(lower.names)
    assert JointSubset.parse("coco17:legs").names == JointSubset.parse("coco17:lower").names
    left, right = JointSubset.parse("coco17:left"), JointSubset.parse("coco17:right")
    assert "nose" not in left.names + right.names and len(left) == len(right) == 8


def test_mpii_prefix_is_the_default_layout():
    assert JointSubset.parse("mpii16:upper").indices == JointSubset.parse("upper").indices
    assert JointSubset.parse("mpii16:upper").layout == JointSubset.parse("upper").layout == layout("mpii16")
    assert JointSubset.parse("mpii16:rwri,head").names == ("right_wrist", "head_top")


def test_specs_of_another_layout_or_unknown_names_are_refused():
    with pytest.raises(ValueError, match="is of layout mpii16, but is read against layout coco17"):
        JointSubset.parse("mpii16:upper", layout="coco17")
    with pytest.raises(ValueError, match="is of layout coco17"):
        JointSubset.parse(JointSubset.parse("coco17:all"), layout="mpii16")
    with pytest.raises(ValueError, match="unknown keypoint layout 'coco'"):
        JointSubset.parse("coco:all")
    with pytest.raises(ValueError, match="unknown joint 'pelvis'"):
        JointSubset.parse("coco17:pelvis")
    with pytest.raises(ValueError, match="unknown joint 'nose'"):
        JointSubset.parse("nose")
    with pytest.raises(ValueError, match="no joints after the layout prefix"):
        JointSubset.parse("coco17:")
    with pytest.raises(ValueError, match="index 17 is not in 0..16"):
        JointSubset((0, 17), layout="coco17")


def test_qualified_name_reads_back_the_same_subset():
    for spec, context in (("coco17:all-head", "coco17"), ("upper", "mpii16"), ("nose,left_ear", "coco17")):
        subset = JointSubset.parse(spec, layout=context)
        again = JointSubset.parse(subset.qualified_name)
        assert (again.indices, again.layout) == (subset.indices, subset.layout)
    assert JointSubset((0, 2), layout="coco17").qualified_name == "coco17:nose,right_eye"


def test_coco_flip_permutation_swaps_left_and_right():
    everything = JointSubset.parse("coco17:all")
    perm = everything.flip_permutation()
    names = everything.names
    assert names[perm[names.index("nose")]] == "nose"
    for part in ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
        assert names[perm[names.index(f"left_{part}")]] == f"right_{part}"
        assert names[perm[names.index(f"right_{part}")]] == f"left_{part}"
    assert perm == (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)
    assert JointSubset.parse("coco17:wrists,nose").flip_pairs == ((0, 1),)
    assert not JointSubset.parse("coco17:left").is_flip_closed
    with pytest.raises(ValueError, match="maps left_eye, left_ear"):
        JointSubset.parse("coco17:left").flip_permutation()


def test_channels_of_across_layouts_goes_by_joint_name():
    mpii, coco = JointSubset.parse("mpii16:all"), JointSubset.parse("coco17:all")
    limbs = JointSubset.parse("coco17:all-head")
    channels = mpii.channels_of(limbs)
    assert [mpii.names[c] for c in channels] == list(limbs.names)
    assert channels[:2] == (13, 12)   # COCO's left_shoulder, right_shoulder are MPII channels 13, 12
    with pytest.raises(ValueError, match="lack nose, left_eye"):
        mpii.channels_of(coco)
    assert coco.position("right_ankle") == 16 and mpii.position("right_ankle") == 0


def test_name_mapping_between_layouts_lists_mapped_new_and_dropped_joints():
    mpii, coco = JointSubset.parse("mpii16:all"), JointSubset.parse("coco17:all")
    mapping = mpii.name_mapping(coco)
    assert set(mapping.mapped) == SHARED_LIMB_JOINTS and len(mapping.mapped) == 12
    assert mapping.mapped == tuple(n for n in COCO_KEYPOINTS if n in SHARED_LIMB_JOINTS)   # target's order
    assert mapping.new == ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
    assert mapping.dropped == ("pelvis", "thorax", "upper_neck", "head_top")
    assert [mpii.names[c] for c in mapping.source_channels] == list(mapping.mapped)
    assert [coco.names[c] for c in mapping.target_channels] == list(mapping.mapped)
    assert (mapping.source, mapping.target) == ("mpii16:all", "coco17:all")
    back = coco.name_mapping(JointSubset.parse("mpii16:upper"))
    assert back.mapped == ("right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
                           "left_wrist")
    assert back.new == ("thorax", "upper_neck", "head_top") and "nose" in back.dropped and "left_hip" in back.dropped


def test_a_layout_built_in_code_is_validated_too():
    with pytest.raises(LayoutError, match="flip_pairs\\[0\\]"):
        KeypointLayout(name="pair", dataset="test", joints=("a", "b"), flip_pairs=(("a", "a"),))
    with pytest.raises(LayoutError, match="both a group and a subset"):
        KeypointLayout(name="clash", dataset="test", joints=("a", "b"), groups=(("ab", ("a", "b")),),
                       subsets=(("ab", ("a",)),))
    tiny = KeypointLayout(name="tiny", dataset="test", joints=("left_hand", "right_hand"),
                          flip_pairs=(("left_hand", "right_hand"),), groups=(("hands", ("left_hand", "right_hand")),))
    assert JointSubset.parse("hands", layout=tiny).flip_permutation() == (1, 0)
    listed = KeypointLayout(name="tiny", dataset="test", joints=["left_hand", "right_hand"],
                            flip_pairs=[["left_hand", "right_hand"]], groups={"hands": ["left_hand", "right_hand"]})
    assert listed == tiny and hash(listed) == hash(tiny)
    with pytest.raises(LayoutError, match="one string"):
        KeypointLayout(name="tiny", dataset="test", joints="left_hand")

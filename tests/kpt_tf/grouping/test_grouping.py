"""Joint grouping: the MI estimator's two anchors, planted groups recovered, body groups connected, the source
ranking, and the CLI on the embedded records and the real annotation file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from kpt_tf.grouping.clustering import body_groups, group_name
from kpt_tf.grouping.grouping import load_groups, make_groups, rank_sources
from kpt_tf.grouping.mutual_information import entropy_bits, joint_states, mi_matrix
from kpt_tf.joints import JOINT_NAMES, SKELETON, JointSubset
from tests.conftest import REPO, require_shared_mpii


def planted(n=4000, blocks=((0, 1, 2, 3, 4, 5), (6, 7, 8, 9), (10, 11, 12, 13, 14, 15)), noise=0.3, seed=0):
    """Locations whose joints are noisy copies of one latent 2-D point per block; blocks are independent."""
    rng = np.random.default_rng(seed)
    xy = np.zeros((n, 16, 2))
    for block in blocks:
        latent = rng.normal(size=(n, 2))
        for j in block:
            xy[:, j] = latent + noise * rng.normal(size=(n, 2))
    return xy, np.ones((n, 16), bool)


def test_mi_of_independent_joints_is_near_zero_and_of_a_copy_equals_its_entropy():
    rng = np.random.default_rng(1)
    xy = rng.normal(size=(5000, 16, 2))
    xy[:, 1] = xy[:, 0]                                  # joint 1 is an exact copy of joint 0
    annotated = np.ones((5000, 16), bool)
    mi = mi_matrix(xy, annotated, bootstrap=5, shuffles=5)
    off = mi.mi[2:, 2:][~np.eye(14, dtype=bool)]
    assert np.abs(off).max() < 0.06, off.max()           # plug-in bias is (35*35)/(2N ln2) ~ 0.18 bits uncorrected
    assert np.abs(mi.shuffled_mean[2:, 2:][~np.eye(14, dtype=bool)]).max() < 0.06
    h0 = entropy_bits(joint_states(xy, annotated, 6)[:, 0])
    assert mi.mi[0, 1] == pytest.approx(h0, abs=1e-9) and mi.mi[0, 0] == pytest.approx(h0, abs=1e-9)
    assert h0 == pytest.approx(np.log2(36), abs=0.05)    # equal-frequency bins: near-uniform states


def test_only_people_annotating_both_joints_count():
    xy, annotated = planted(n=1000)
    annotated[:300, 3] = False
    mi = mi_matrix(xy, annotated, bootstrap=2, shuffles=2)
    assert mi.pair_people[3, 4] == 700 and mi.pair_people[4, 5] == 1000


def test_mi_grouping_recovers_planted_blocks_and_is_deterministic():
    xy, annotated = planted()
    mi = mi_matrix(xy, annotated, bootstrap=3, shuffles=3)
    groups = make_groups(mi, 3, "mi")
    assert [sorted(JOINT_NAMES.index(j) for j in g) for g in groups["groups"]] == [
        [0, 1, 2, 3, 4, 5], [6, 7, 8, 9], [10, 11, 12, 13, 14, 15]]
    assert groups == make_groups(mi_matrix(xy, annotated, bootstrap=3, shuffles=3), 3, "mi")
    assert groups["names"] == ["ank_kne_hip", "pelv_thor_neck_head", "wri_elb_sho"]


@pytest.mark.parametrize("num_groups", range(1, 8))
def test_body_groups_are_connected_parts_of_the_skeleton(num_groups):
    groups = body_groups(JointSubset.parse("all"), num_groups)
    assert len(groups) == num_groups and sorted(j for g in groups for j in g) == list(range(16))
    for g in groups:
        reached, frontier = {g[0]}, [g[0]]
        while frontier:
            a = frontier.pop()
            for x, y in SKELETON:
                for u, v in ((x, y), (y, x)):
                    if u == a and v in g and v not in reached:
                        reached.add(v)
                        frontier.append(v)
        assert reached == set(g), [JOINT_NAMES[i] for i in g]
    if num_groups == 2:   # MPII's upper / lower
        assert {tuple(g) for g in groups} == {JointSubset.parse("lower").indices, JointSubset.parse("upper").indices}


def test_group_names_come_only_from_their_own_joints():
    assert group_name(["right_ankle", "left_ankle", "right_knee"]) == "ank_rkne"
    assert group_name(["left_wrist"]) == "lwri"
    assert load_groups([["left_wrist", "left_elbow"], {"name": "legs", "joints": ["right_knee"]}]) == [
        ("lelb_lwri", ["left_wrist", "left_elbow"]), ("legs", ["right_knee"])]


def test_the_source_ranking_puts_a_planted_informative_source_first():
    # Legs and arms share one latent, the head block is independent of both.
    xy, annotated = planted(blocks=((0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15), (6, 7, 8, 9)))
    mi = mi_matrix(xy, annotated, bootstrap=2, shuffles=2)
    ranking = rank_sources(mi, "legs", ["arms", "pelvis,thorax,upper_neck,head_top"])
    assert [r["source"] for r in ranking["ranking"]] == ["arms", "pelvis,thorax,upper_neck,head_top"]
    assert ranking["ranking"][1]["score"] < 0.1 < ranking["ranking"][0]["score"]


@pytest.mark.slow
def test_cli_on_embedded_records_writes_matrix_groups_and_heat_map(embedded_records, tmp_path):
    done = subprocess.run([sys.executable, "-m", "kpt_tf.grouping", "--data", str(embedded_records), "--groups", "3",
                           "--out", str(tmp_path), "--bootstrap", "3"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    mi = json.loads((tmp_path / "mi.json").read_text())
    groups = json.loads((tmp_path / "groups.json").read_text())
    assert mi["joints"] == list(JOINT_NAMES) and np.asarray(mi["mi"]).shape == (16, 16)
    assert groups["method"] == "mi" and sorted(j for g in groups["groups"] for j in g) == sorted(JOINT_NAMES)
    assert (tmp_path / "mi.png").stat().st_size > 1000 and "mi groups (3)" in done.stdout


def test_cli_on_the_real_annotations_and_its_refusals(tmp_path):
    shared = require_shared_mpii()
    done = subprocess.run([sys.executable, "-m", "kpt_tf.grouping", "--data", str(shared / "mpii_annotations.json.gz"),
                           "--groups", "2", "--method", "body", "--bootstrap", "2", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    mi = json.loads((tmp_path / "mi.json").read_text())
    assert mi["people"] > 20000 and json.loads((tmp_path / "groups.json").read_text())["method"] == "body"
    mi_values = np.asarray(mi["mi"])
    hips = JOINT_NAMES.index("right_hip"), JOINT_NAMES.index("left_hip")
    wrist_ankle = JOINT_NAMES.index("right_wrist"), JOINT_NAMES.index("left_ankle")
    assert mi_values[hips] > 5 * mi_values[wrist_ankle]   # the hips move together, a wrist and an ankle hardly
    bad = subprocess.run([sys.executable, "-m", "kpt_tf.grouping", "--data", str(tmp_path / "nowhere.json"),
                          "--groups", "2"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


# --- groupings of another layout than MPII's (issue 35) ----------------------------------------------

COCO17 = JointSubset.parse("coco17:all")


def test_mpii_body_group_names_are_the_former_ones():
    names = [[group_name([JOINT_NAMES[i] for i in g]) for g in body_groups(JointSubset.parse("all"), n)]
             for n in (2, 5, 7)]
    assert names == [["ank_kne_hip_pelv", "thor_neck_head_wri_elb_sho"],
                     ["rank_rkne_rhip", "lhip_lkne_lank", "pelv_thor_neck_head", "rwri_relb_rsho", "lsho_lelb_lwri"],
                     ["rank_rkne_rhip", "lhip_lkne_lank", "pelv", "thor", "neck_head", "rwri_relb_rsho",
                      "lsho_lelb_lwri"]]


def test_coco17_group_names_mirror_by_its_flip_pairs():
    coco17 = COCO17.layout
    assert group_name(["right_eye", "nose", "left_eye"], coco17) == "nose_eye"
    assert group_name(list(JointSubset.parse("coco17:legs").names), coco17) == "hip_knee_ankle"
    assert group_name(["left_wrist", "left_elbow"], coco17) == "left_elbow_left_wrist"   # no pair: full names
    assert group_name(["left_wrist", "left_elbow"]) == "lelb_lwri"                         # MPII's short names
    assert load_groups([["right_ear", "left_ear"]], coco17) == [("ear", ["right_ear", "left_ear"])]


@pytest.mark.parametrize("num_groups", range(1, 6))
def test_coco17_body_groups_cover_every_joint_and_are_connected_in_its_skeleton(num_groups):
    groups = body_groups(COCO17, num_groups)
    assert len(groups) == num_groups and sorted(j for g in groups for j in g) == list(range(17))
    edges = COCO17.layout.skeleton_indices
    for g in groups:
        reached, frontier = {g[0]}, [g[0]]
        while frontier:
            a = frontier.pop()
            for b in [y for x, y in edges if x == a] + [x for x, y in edges if y == a]:
                if b in g and b not in reached:
                    reached.add(b)
                    frontier.append(b)
        assert reached == set(g), [COCO17.names[i] for i in g]
    if num_groups == 2:   # COCO's upper / lower
        assert [tuple(g) for g in groups] == [JointSubset.parse("coco17:upper").indices,
                                              JointSubset.parse("coco17:lower").indices]


def test_body_groups_refuse_a_count_or_a_joint_they_cannot_place():
    with pytest.raises(ValueError, match=r"coco17:all has \[1, 2, 3, 4, 5\] groups, not 6"):
        body_groups(COCO17, 6)
    from kpt_tf.layouts import KeypointLayout

    toy = KeypointLayout(name="toy", dataset="Toy", joints=("nose", "tail"))
    with pytest.raises(ValueError, match="no body part for tail"):
        body_groups(JointSubset((0, 1), layout=toy), 1)


def test_coco17_mi_groups_are_named_from_its_layout_and_ranked_by_its_subsets():
    # Face (0..4), arms (5..10) and legs (11..16) as three independent blocks; `planted` makes 16 columns, the
    # 17th (right ankle) is one more noisy copy of the legs' latent.
    xy, annotated = planted(n=3000, blocks=(range(0, 5), range(5, 11), range(11, 16)))
    xy, annotated = np.concatenate([xy, xy[:, :1]], axis=1), np.concatenate([annotated, annotated[:, :1]], axis=1)
    xy[:, 16] = xy[:, 15] + 0.3 * np.random.default_rng(5).normal(size=(3000, 2))
    with pytest.raises(ValueError, match="17 joints but 16 joint names"):
        mi_matrix(xy, annotated, bootstrap=1, shuffles=1)
    mi = mi_matrix(xy, annotated, COCO17, bootstrap=1, shuffles=1)
    assert mi.joints == list(COCO17.names)
    groups = make_groups(mi, 3, "mi", "coco17:all")
    assert groups["groups"] == [list(COCO17.names[:5]), list(COCO17.names[5:11]), list(COCO17.names[11:])]
    assert groups["names"] == ["nose_eye_ear", "shoulder_elbow_wrist", "hip_knee_ankle"]
    ranking = rank_sources(mi, "upper", ["head", "legs"], COCO17.layout)
    assert [r["source"] for r in ranking["ranking"]] == ["head", "legs"]
    with pytest.raises(ValueError, match="lacks: pelvis, thorax, upper_neck, head_top"):
        rank_sources(mi, "torso_head", ["arms"])          # MPII's subset: joints this MI does not hold


def test_the_matrix_is_labelled_by_the_layouts_names():
    from kpt_tf.grouping.__main__ import format_matrix

    xy, annotated = planted(n=300)
    mpii_text = format_matrix(mi_matrix(xy, annotated, bootstrap=1, shuffles=1)).splitlines()
    assert mpii_text[1] == "      " + "".join(f"{s:>6}" for s in
                                              "rank rkne rhip lhip lkne lank pelv thor neck head rwri relb rsho "
                                              "lsho lelb lwri".split())
    coco_mi = mi_matrix(np.concatenate([xy, xy[:, :1]], axis=1), np.ones((300, 17), bool), COCO17,
                        bootstrap=1, shuffles=1)
    coco_text = format_matrix(coco_mi, COCO17.layout).splitlines()
    assert coco_text[1].split() == list(COCO17.names)
    assert coco_text[2].startswith(" " * 11 + "nose") and len({len(line) for line in coco_text[1:]}) == 1


def test_estimate_refuses_joints_of_another_layout_than_the_datas(monkeypatch):
    from kpt_tf.grouping import grouping
    from kpt_tf.grouping.locations import Locations

    xy, annotated = planted(n=200)
    monkeypatch.setattr(grouping, "read_locations", lambda data: Locations(xy, annotated, annotated, str(data)))
    assert grouping.estimate("people.json", "all", bootstrap=1, log=lambda _: None).joints == list(JOINT_NAMES)
    with pytest.raises(ValueError, match=r"coco17:all are of layout coco17, but people.json holds MPII people"):
        grouping.estimate("people.json", "coco17:all", bootstrap=1, log=lambda _: None)

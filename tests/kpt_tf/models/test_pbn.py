"""Part-Based Branching Network: output order and shapes, branch names, refusals, save/load, training, export."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kpt_tf.joints import JointSubset
from kpt_tf.models.pbn import build_pbn, resolve_groups

GROUPS = [["right_ankle", "right_knee", "left_knee", "left_ankle", "right_hip", "left_hip", "pelvis"],
          ["thorax", "upper_neck", "head_top"],
          {"name": "arms", "joints": ["right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
                                      "left_wrist"]}]


def tiny(joints="all", groups=GROUPS, trunk=1, branch=2):
    keras.utils.set_random_seed(0)
    return build_pbn(JointSubset.parse(joints), groups, trunk_stacks=trunk, branch_stacks=branch, channels=16,
                     branch_channels=8, depth=2, input_size=64)


def test_outputs_are_stages_over_the_subset_in_its_order():
    net = tiny()
    assert len(net.outputs) == 3 and all(tuple(o.shape) == (None, 16, 16, 16) for o in net.outputs)
    # Each stage's channel k is the head channel of joint k in its group's branch.
    names = list(JointSubset.parse("all").names)
    heads = {g: net.get_layer(f"branch_{g}_head1").output for g in ("ank_kne_hip_pelv", "thor_neck_head", "arms")}
    probe = keras.Model(net.inputs, [net.outputs[-1], *heads.values()])
    final, *group_maps = probe(tf.random.uniform([2, 64, 64, 3], 0, 255, seed=1))
    for (_name, members), maps in zip(resolve_groups(GROUPS, JointSubset.parse("all")), group_maps):
        for k, joint in enumerate(members):
            np.testing.assert_array_equal(final[..., names.index(joint)].numpy(), maps[..., k].numpy())


@pytest.mark.slow
def test_branch_names_depend_only_on_their_own_group():
    other = [GROUPS[0], ["thorax"], ["upper_neck", "head_top"], GROUPS[2]]
    a = {layer.name for layer in tiny().layers if layer.name.startswith("branch_arms_")}
    b = {layer.name for layer in tiny(groups=other).layers if layer.name.startswith("branch_arms_")}
    assert a == b and "branch_arms_hg0_merge2" in a and "branch_arms_in" in a
    expected = {"stem_conv", "head0", "reinject0_add", "stage1_joints", "stage2_joints"}
    assert expected <= {layer.name for layer in tiny().layers}


def test_a_subset_keeps_the_part_of_each_group_it_has():
    net = tiny(joints="upper")
    assert all(o.shape[-1] == 9 for o in net.outputs)
    branches = {layer.name.split("_hg0")[0] for layer in net.layers if layer.name.endswith("_hg0_merge1")}
    assert branches == {"branch_thor_neck_head", "branch_arms"}


def test_groups_that_overlap_or_miss_joints_are_refused():
    with pytest.raises(ValueError, match="in two groups"):
        resolve_groups([["thorax", "pelvis"], ["pelvis"]], JointSubset.parse("torso_head"))
    with pytest.raises(ValueError, match="in no group"):
        resolve_groups([["thorax"]], JointSubset.parse("upper"))
    with pytest.raises(ValueError, match="groups is empty"):
        resolve_groups([], JointSubset.parse("upper"))


@pytest.mark.slow
def test_save_and_load_in_safe_mode_round_trips(tmp_path):
    net = tiny()
    net.save(tmp_path / "pbn.keras")
    loaded = keras.saving.load_model(tmp_path / "pbn.keras", compile=False, safe_mode=True)
    x = tf.random.uniform([1, 64, 64, 3], 0, 255, seed=2)
    np.testing.assert_allclose(loaded(x)[-1].numpy(), net(x)[-1].numpy(), atol=1e-6)


@pytest.mark.slow
def test_a_pbn_trains_exports_and_serves_like_any_network(embedded_records, tmp_path):
    from configs.pbn_hg_mpii import pbn_model
    from kpt_tf import workdir as wd
    from kpt_tf.export import export_workdir
    from kpt_tf.trained import load_trained
    from kpt_tf.training import loop
    from tests.conftest import tiny_train_config

    groups_json = tmp_path / "groups.json"
    groups_json.write_text(__import__("json").dumps({"groups": [g if isinstance(g, list) else g["joints"]
                                                                for g in GROUPS]}))
    config = tiny_train_config(embedded_records, epochs=1, steps=3)
    config.model = pbn_model(config.model, 1, 1, 8, [], "")   # the configs' own way to make a PBN's section
    config.model.groups_file = str(groups_json)
    summary = loop.train(config, tmp_path / "run", verbose=0)
    assert len(summary["history"]) == 1 and summary["history"][0]["mean_occluded"] is not None
    saved = wd.load_config(tmp_path / "run")
    assert saved.model.groups_file == "" and len(saved.model.groups) == 3   # self-contained without the file
    groups_json.unlink()
    served = load_trained(export_workdir(tmp_path / "run", tmp_path / "sm"))
    assert served.joints.names == JointSubset.parse("all").names
    import tensorflow as tf
    sm = tf.saved_model.load(str(tmp_path / "sm"))
    image = tf.cast(tf.random.uniform([1, 96, 96, 3], 0, 255, seed=1), tf.uint8)  # all-black is refused
    out = sm.signatures["serving_default"](images=image, boxes=tf.constant([[10.0, 10.0, 80.0, 90.0]]))
    assert out["keypoints"].shape == (1, 16, 2)

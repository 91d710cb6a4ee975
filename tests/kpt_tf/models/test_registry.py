"""The architecture seam (kpt_tf/models): registry, config-built networks, codec, joint layout, copy by name."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from configs.base import base_config
from kpt_tf.joints import JointSubset
from kpt_tf.models import ARCHITECTURES, architecture, build_net, codec_from_config, net_from_saved
from kpt_tf.models.weights import plan_copy, weights_by_name


def tiny(joints="all", stacks=2):
    c = base_config()
    c.joints = joints
    c.model.num_stacks, c.model.channels, c.model.depth, c.model.input_size = stacks, 16, 2, 64
    return c


def test_hourglass_is_registered_and_unknown_names_are_refused():
    assert "hourglass" in ARCHITECTURES
    assert architecture(tiny()).name == "hourglass"
    c = tiny()
    c.model.name = "no_such_net"
    with pytest.raises(ValueError, match="no_such_net.*hourglass"):
        build_net(c, JointSubset.parse("all"))


def test_codec_follows_the_architecture_output_stride():
    codec = codec_from_config(tiny())
    assert (codec.input_size, codec.heatmap_size) == (64, 16)
    net = build_net(tiny(), JointSubset.parse("all"))
    assert net.outputs[-1].shape[1] == codec.heatmap_size


def test_joint_layout_names_exactly_the_subset_dependent_layers():
    arch = architecture("hourglass")
    upper = build_net(tiny("upper"), JointSubset.parse("upper"))
    lower = build_net(tiny("lower"), JointSubset.parse("lower"))
    shapes_upper = {v.path: tuple(v.shape) for v in upper.weights}
    shapes_lower = {v.path: tuple(v.shape) for v in lower.weights}
    assert shapes_upper.keys() == shapes_lower.keys()
    differing = {name.split("/")[0] for name in shapes_upper if shapes_upper[name] != shapes_lower[name]}
    assert differing == {"head0", "head1", "reinject0_heatmaps"}
    assert all(arch.is_joint_dependent(layer) for layer in differing)
    assert arch.joint_layout("head1") == {"kernel": 3, "bias": 0}
    assert arch.joint_layout("reinject0_heatmaps") == {"kernel": 2, "bias": None}
    assert not arch.is_joint_dependent("stem_conv")


def test_plan_copy_matches_by_name_and_shape_and_assigns_only_on_apply():
    keras.utils.set_random_seed(0)
    source = build_net(tiny("all"), JointSubset.parse("all"))
    keras.utils.set_random_seed(1)
    target = build_net(tiny("upper"), JointSubset.parse("upper"))
    before = weights_by_name(target)
    plan = plan_copy(target, weights_by_name(source))
    assert {r[0].split("/")[0] for r in plan.shape_mismatched} == {"head0", "head1", "reinject0_heatmaps"}
    np.testing.assert_array_equal(target.get_layer("stem_conv").kernel.numpy(), before["stem_conv/kernel"])
    plan.apply()
    np.testing.assert_array_equal(target.get_layer("stem_conv").kernel.numpy(),
                                  source.get_layer("stem_conv").kernel.numpy())
    skipped = plan_copy(target, weights_by_name(source), skip=lambda name: name.startswith("head"))
    assert {r[0].split("/")[0] for r in skipped.skipped} == {"head0", "head1"}


@pytest.mark.slow
def test_net_from_saved_rebuilds_weights_and_trainable_flags(tmp_path):
    keras.utils.set_random_seed(3)
    saved = build_net(tiny(), JointSubset.parse("all"))
    saved.get_layer("stem_conv").trainable = False
    saved.save(tmp_path / "init.keras")
    rebuilt = net_from_saved(tiny(), JointSubset.parse("all"), False, tmp_path / "init.keras")
    for name, value in weights_by_name(saved).items():
        np.testing.assert_array_equal(weights_by_name(rebuilt)[name], value)
    assert not rebuilt.get_layer("stem_conv").trainable and rebuilt.get_layer("head0").trainable
    with pytest.raises(ValueError, match="does not match"):
        net_from_saved(tiny(stacks=1), JointSubset.parse("all"), False, tmp_path / "init.keras")

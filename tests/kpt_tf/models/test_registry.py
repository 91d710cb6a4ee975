"""The architecture seam (kpt_tf/models): registry, config-built networks, codec, joint layout, config sections."""

from __future__ import annotations

import pytest

from configs.base import base_config
from kpt_tf.joints import JointSubset
from kpt_tf.models import ARCHITECTURES, architecture, build_net, codec_from_config


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


def test_a_model_section_lacking_keys_added_since_is_filled_from_the_architecture_declaration():
    import ml_collections

    from kpt_tf.models import model_config, resolve_config

    # a config.json of an early workdir: no model.name, stem, input_mean or input_std
    old = ml_collections.ConfigDict(dict(joints="all", codec=dict(sigma=1.0), model=dict(
        num_stacks=2, channels=16, depth=2, num_blocks=1, input_size=64)))
    assert model_config(old).to_dict() == {**tiny().model.to_dict(), "stem": "bearpaw"}
    assert "stem" not in old.model                                   # model_config fills a copy
    net = build_net(old, JointSubset.parse("all"))
    assert [w.shape for w in net.weights] == [w.shape for w in build_net(tiny(), JointSubset.parse("all")).weights]
    assert codec_from_config(old).heatmap_size == 16
    assert resolve_config(old).model.input_std == (1.0, 1.0, 1.0)    # resolve_config fills in place


def test_model_keys_are_checked_naming_the_config_key():
    from kpt_tf.models import resolve_config

    for key, value, message in (("channels", 15, "config model.channels must be even"),
                                ("input_size", 72, "config model.input_size 72 must be a multiple of 16"),
                                ("stem", "wide", "config model.stem must be one of"),
                                ("input_std", (1.0, 0.0, 1.0), "config model.input_std must be positive")):
        c = tiny()
        c.model[key] = value
        with pytest.raises(ValueError, match=message):
            resolve_config(c)
    c = tiny()
    with c.model.unlocked():
        c.model.trunk_stacks = 1                                     # a PBN key on an hourglass
    with pytest.raises(ValueError, match="config model.trunk_stacks: not a key of architecture hourglass"):
        build_net(c, JointSubset.parse("all"))


def test_switching_architecture_keeps_the_shared_keys_and_takes_the_new_ones_from_its_declaration():
    from kpt_tf.models import model_section

    hourglass = tiny().model
    hourglass.stem = "scaled"
    pbn = model_section("pbn", like=hourglass, trunk_stacks=1, branch_stacks=1)
    assert pbn.name == "pbn" and "num_stacks" not in pbn
    assert (pbn.channels, pbn.depth, pbn.input_size, pbn.stem) == (16, 2, 64, "scaled")
    assert (pbn.branch_channels, pbn.groups_file) == (0, "")       # the PBN's declared defaults
    back = model_section("hourglass", like=pbn, num_stacks=2)
    assert back.to_dict() == hourglass.to_dict()
    with pytest.raises(ValueError, match="config model.num_stacks: not a key of architecture pbn"):
        model_section("pbn", num_stacks=3)
    with pytest.raises(ValueError, match="config model.name 'hrnet': unknown architecture; known: hourglass, pbn"):
        model_section("hrnet")

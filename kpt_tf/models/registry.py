"""The architecture seam: every pose network registers what the rest of the toolkit needs to know of it.

`config.model.name` picks the architecture (`ARCHITECTURES`, a `kpt_tf.registry.Registry`: the built-in ones
are listed below by module and imported on first use; a new one is a module that calls `register`). Training,
export, the codec and KPTransfer ask the architecture instead of assuming a stacked hourglass:
- `section`: its config section, declared once (`kpt_tf.registry.ConfigSection`: every key of `config.model`
  with its default, and the check); `kpt_tf.models.model_section` makes one for a config, and every reader of a
  config (`resolve_config`, `build_net`) fills a section lacking a key from it and checks it, so the functions
  below get a complete, checked section and read its keys without defaults;
- `build(model_config, joints, synchronized_bn)`: a functional keras.Model for the JointSubset `joints`
  (heads sized and, for part-based networks, grouped by its names), input float32 [B, S, S, 3]
  pixels 0..255, outputs per `kpt_tf.models.outputs` (one heatmap tensor per supervised stage, last = final);
- `output_stride(model_config)`: input pixels per heatmap pixel (the codec's heatmap size follows from it);
- `joint_layout(layer_name)`: None for a layer whose weights do not depend on the joint subset, else a dict
  weight name -> axis that indexes joints (None for a weight of that layer that does not), so transfer can
  carry channels over by joint name and never copies a joint-dependent weight blindly (`"joints": "group"`
  in the dict: the channels are a part's joints, not the subset's, and are not mapped);
- `resolve_config(model_config)` (optional): inline what the config refers to, before the config is saved;
- `branches(model_config, joints)` (optional): the network's `Branch`es, parts with their own layers for a group of
  joints (the PBN's), so transfer can initialise one from a network trained on that group.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from kpt_tf.registry import ConfigSection, Registry

# The architecture of a model section without `name` and of an export without `architecture` (files written before
# there was a second one); configs/base.py starts from it.
DEFAULT_ARCHITECTURE = "hourglass"

ARCHITECTURES = Registry("architecture", "config model.name", builtins={
    "hourglass": "kpt_tf.models.hourglass",
    "pbn": "kpt_tf.models.pbn",
})


def _unchanged(model_config):
    return model_config


def _no_branches(model_config, joints):
    return []


@dataclasses.dataclass(frozen=True)
class Branch:
    """A part of a network with its own layers that predicts a group of the subset's joints."""

    name: str
    joints: tuple[str, ...]            # the group's joints, in the order of the branch's heads
    layer_prefix: str                  # every layer of the branch (and no other) starts with it
    # source layer names (a plain single-subset network) -> {source layer: branch layer} for the source layers
    # that initialise the branch; refuses (ValueError) a source the branch cannot take
    rename: Callable


@dataclasses.dataclass(frozen=True)
class Architecture:
    name: str
    section: ConfigSection
    build: Callable
    output_stride: Callable
    joint_layout: Callable
    # model_config -> model_config with references to files (e.g. a groups.json) made inline, so that a
    # workdir's config.json alone rebuilds the network
    resolve_config: Callable = _unchanged
    branches: Callable = _no_branches

    def is_joint_dependent(self, layer_name: str) -> bool:
        return self.joint_layout(layer_name) is not None


def register(architecture: Architecture) -> Architecture:
    """Make `architecture` selectable as `model.name` (called by its own module)."""
    if architecture.section.defaults.get("name") != architecture.name:
        raise ValueError(f"architecture {architecture.name!r}: its config section must declare name="
                         f"{architecture.name!r}")
    return ARCHITECTURES.register(architecture.name, architecture)

"""Pose networks: the architecture registry (`config.model.name`), building from a config, the codec a
network's output stride implies, and rebuilding a saved network for the current strategy.

Architectures live one module each (`hourglass.py`), built from the shared `blocks`; each registers itself
(`registry.register`) when imported below.
"""

from __future__ import annotations

from pathlib import Path

from kpt_tf.joints import JointSubset
from kpt_tf.models import (
    hourglass,  # noqa: F401  (registers "hourglass")
    pbn,  # noqa: F401  (registers "pbn")
)
from kpt_tf.models.registry import ARCHITECTURES, Architecture
from kpt_tf.models.weights import plan_copy, weights_by_name

DEFAULT_ARCHITECTURE = "hourglass"


def architecture_name(config) -> str:
    return str(config.model.get("name", DEFAULT_ARCHITECTURE))


def architecture(config_or_name) -> Architecture:
    """The registered architecture of a config (its `model.name`, `hourglass` when absent) or of a name."""
    name = config_or_name if isinstance(config_or_name, str) else architecture_name(config_or_name)
    if name not in ARCHITECTURES:
        raise ValueError(f"config model.name {name!r}: unknown architecture; registered: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def resolve_config(config):
    """The config with its model section made self-contained by the architecture (in place; returned)."""
    architecture(config).resolve_config(config.model)
    return config


def build_net(config, subset: JointSubset, synchronized_bn: bool = False):
    """The config's network with heads sized to `subset` (layer names do not depend on the subset)."""
    return architecture(config).build(config.model, subset, synchronized_bn)


def heatmap_size(config) -> int:
    input_size = int(config.model.input_size)
    stride = int(architecture(config).output_stride(config.model))
    if input_size % stride:
        raise ValueError(f"config model.input_size {input_size} is not a multiple of the output stride {stride}")
    return input_size // stride


def codec_from_config(config):
    """The heatmap codec of a config: its input size, the architecture's heatmap size, its sigma."""
    from kpt_tf.codec import HeatmapCodec

    return HeatmapCodec(input_size=int(config.model.input_size), heatmap_size=heatmap_size(config),
                        sigma=float(config.codec.sigma))


def net_from_saved(config, subset: JointSubset, synchronized_bn: bool, saved_path: Path):
    """Build the config's network and take every weight and `trainable` flag from a saved `.keras` model of
    the same architecture (a transfer-initialised workdir), matched by layer-path name.

    Rebuilding rather than loading keeps the BatchNormalization mode right for the current strategy.
    """
    from kpt_tf.workdir import load_keras

    net = build_net(config, subset, synchronized_bn)
    saved = load_keras(saved_path)
    plan = plan_copy(net, weights_by_name(saved))
    if plan.only_in_target or plan.shape_mismatched or plan.only_in_source:
        differ = [r[0] for r in plan.only_in_target + plan.shape_mismatched + plan.only_in_source]
        raise ValueError(f"{saved_path}: does not match the config's network; weights missing, extra or of "
                         f"another shape: {differ[:5]}")
    plan.apply()
    saved_layers = {layer.name: layer for layer in saved.layers}
    for layer in net.layers:
        if layer.weights:
            layer.trainable = saved_layers[layer.name].trainable
    return net

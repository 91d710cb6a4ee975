"""Pose networks: the architecture registry (`config.model.name`), building from a config, and the codec a
network's output stride implies. (Rebuilding a saved network for the current strategy: `kpt_tf.trained`.)

Architectures live one module each (`hourglass.py`, `pbn.py`), built from the shared `blocks`; each registers
itself (`registry.register`) with its config section, and `registry.ARCHITECTURES` imports it the first time its
name is looked up (nothing here imports an architecture by name). Every function below takes a config whose model
section may lack keys added since it was written (an older workdir's config.json): the architecture's declaration
fills them.
"""

from __future__ import annotations

from kpt_tf.joints import JointSubset
from kpt_tf.models.registry import ARCHITECTURES, DEFAULT_ARCHITECTURE, Architecture


def architecture_name(config) -> str:
    return str(config.model.get("name", DEFAULT_ARCHITECTURE))


def architecture(config_or_name) -> Architecture:
    """The registered architecture of a config (its `model.name`) or of a name; ValueError listing the known
    ones for an unknown name."""
    name = config_or_name if isinstance(config_or_name, str) else architecture_name(config_or_name)
    return ARCHITECTURES.get(name)


def model_section(name: str = DEFAULT_ARCHITECTURE, like=None, **values):
    """A new `config.model` for architecture `name`: its declared defaults, then the values of `like` (another model
    section, of any architecture) for the keys both declare, then `values`; a key `name` does not declare is
    refused. E.g. `model_section("pbn", like=c.model, trunk_stacks=6, ...)` keeps an hourglass' stem and width."""
    declared = architecture(name).section
    shared = {k: v for k, v in (like.to_dict() if hasattr(like, "to_dict") else dict(like or {})).items()
              if k in declared.defaults and k != "name"}
    return declared.make(**{**shared, **values, "name": name})


def model_config(config):
    """The config's model section filled from its architecture's declaration and checked (a copy)."""
    return architecture(config).section.filled(config.model)


def resolve_config(config):
    """The config with its model section complete (every key its architecture declares), self-contained (what it
    refers to made inline, e.g. a PBN's groups file) and checked: what a run saves (in place; returned)."""
    arch = architecture(config)
    arch.section.fill(config.model)
    arch.resolve_config(config.model)
    return config


def build_net(config, subset: JointSubset, synchronized_bn: bool = False):
    """The config's network with heads sized to `subset` (layer names do not depend on the subset)."""
    return architecture(config).build(model_config(config), subset, synchronized_bn)


def heatmap_size(config) -> int:
    input_size = int(config.model.input_size)
    stride = int(architecture(config).output_stride(model_config(config)))
    if input_size % stride:
        raise ValueError(f"config model.input_size {input_size} is not a multiple of the output stride {stride}")
    return input_size // stride


def codec_from_config(config):
    """The heatmap codec of a config: its input size, the architecture's heatmap size, its sigma."""
    from kpt_tf.codec import HeatmapCodec

    return HeatmapCodec(input_size=int(config.model.input_size), heatmap_size=heatmap_size(config),
                        sigma=float(config.codec.sigma))

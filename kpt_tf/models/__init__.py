"""Pose networks built from a config. The stacked hourglass is the one architecture so far."""

from __future__ import annotations

from pathlib import Path

import keras

from kpt_tf.joints import JointSubset


def build_net(config, subset: JointSubset, synchronized_bn: bool = False) -> keras.Model:
    """The config's network with heads sized to `subset` (layer names do not depend on the subset)."""
    from kpt_tf.models.hourglass import build_hourglass

    m = config.model
    return build_hourglass(num_stacks=int(m.num_stacks), channels=int(m.channels), num_joints=len(subset),
                           depth=int(m.depth), num_blocks=int(m.num_blocks), input_size=int(m.input_size),
                           synchronized_bn=synchronized_bn, stem=str(m.get("stem", "bearpaw")))


def net_from_config(config, subset: JointSubset, synchronized_bn: bool, weights_from: Path) -> keras.Model:
    """Build the config's network and take every weight and `trainable` flag from a saved `.keras` model
    of the same architecture (a transfer-initialised workdir), matched by layer name.

    Rebuilding rather than loading keeps the BatchNormalization mode right for the current strategy.
    """
    net = build_net(config, subset, synchronized_bn)
    saved = keras.saving.load_model(weights_from, compile=False)
    saved_layers = {layer.name: layer for layer in saved.layers}
    missing = [layer.name for layer in net.layers if layer.weights and layer.name not in saved_layers]
    if missing:
        raise ValueError(f"{weights_from}: does not match the config's network; layers missing: {missing[:5]}")
    for layer in net.layers:
        if layer.weights:
            source = saved_layers[layer.name]
            layer.set_weights(source.get_weights())
            layer.trainable = source.trainable
    return net

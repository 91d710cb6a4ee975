"""Batch norm folded into the convolution before it, for inference: the forward every prediction runs.

In inference a batch norm is a per-channel affine map, so a convolution whose only consumer is a batch norm can
compute both at once: kernel x s and (bias - mean) x s + beta, s = gamma / sqrt(variance + epsilon). The folded
kernel and bias are computed from the network's own variables at every call (a few small ops on kernel-sized
tensors), so the network, its saved files and an export's variables stay exactly the trained ones; only the
graph that runs differs. The ReLU after the pair then fuses into the convolution as well (TF's graph optimiser).

In a stacked hourglass two of the three batch norms of every residual block follow a convolution (the pre-
activation block's first one follows an addition and stays), and so do the stem's and every stack's `fc`.
Measured on the hg2_256 network at batch 1 (BUILD_NOTES, Speed against PyTorch): the batch norms were 33 of
165 ms of summed op time. The output equals the unfolded network's to float rounding (tests/kpt_tf/models/
test_folding.py).
"""

from __future__ import annotations

import collections

import keras
import tensorflow as tf
from keras import layers

from kpt_tf.models.blocks import convolve
from kpt_tf.training import keras_compat


def _foldable_conv(layer) -> bool:
    return (isinstance(layer, layers.Conv2D) and layer.data_format == "channels_last" and layer.groups == 1
            and layer.activation in (None, keras.activations.linear) and layer.compute_dtype == "float32")


def _foldable_norm(layer) -> bool:
    return (isinstance(layer, layers.BatchNormalization) and layer.axis in (-1, 3) and layer.center
            and layer.scale and not layer.renorm and layer.compute_dtype == "float32")


def foldable_pairs(net: keras.Model) -> list[tuple]:
    """(convolution, batch norm) layers of a functional network where the batch norm is the convolution's only
    consumer and takes nothing else, in the network's layer order. A layer called more than once is left alone."""
    producer, consumers = {}, collections.defaultdict(list)
    for layer in net.layers:
        try:
            inputs, output = keras.tree.flatten(layer.input), layer.output
        except (AttributeError, ValueError):      # a layer used at several places in the graph
            continue
        producer[id(output)] = layer
        for tensor in inputs:
            if tensor is not output:              # an InputLayer's input is its output
                consumers[id(tensor)].append(layer)
    for tensor in keras.tree.flatten(net.outputs):
        consumers[id(tensor)].append(None)
    pairs = []
    for norm in net.layers:
        if not _foldable_norm(norm):
            continue
        try:
            (tensor,) = keras.tree.flatten(norm.input)
        except (AttributeError, ValueError):
            continue
        conv = producer.get(id(tensor))
        if conv is not None and _foldable_conv(conv) and consumers[id(tensor)] == [norm]:
            pairs.append((conv, norm))
    return pairs


def _folded_call(conv: layers.Conv2D, norm: layers.BatchNormalization):
    def call(inputs, *args, **kwargs):
        scale = tf.convert_to_tensor(norm.gamma) * tf.math.rsqrt(tf.convert_to_tensor(norm.moving_variance)
                                                                   + norm.epsilon)
        bias = tf.convert_to_tensor(conv.bias) if conv.use_bias else 0.0
        bias = (bias - tf.convert_to_tensor(norm.moving_mean)) * scale + tf.convert_to_tensor(norm.beta)
        return convolve(conv, inputs, tf.convert_to_tensor(conv.kernel) * scale, bias)

    return call


def _passed_through(inputs, *args, **kwargs):
    return inputs


class FoldedForward:
    """`net(images, training=False)` with every foldable (convolution, batch norm) pair computed as one
    convolution; the plain call when the network has none (or is not functional)."""

    def __init__(self, net: keras.Model):
        self.net = net
        pairs = foldable_pairs(net) if keras_compat.is_functional(net) else []
        self.folded = len(pairs)
        self._replacements = {}
        for conv, norm in pairs:
            self._replacements[id(conv)] = _folded_call(conv, norm)
            self._replacements[id(norm)] = _passed_through

    def __call__(self, images):
        if not self._replacements:
            return self.net(images, training=False)
        return keras_compat.run_functional(self.net, images, lambda layer: self._replacements.get(id(layer)))

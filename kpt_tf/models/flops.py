"""Floating-point operations per image of a Keras functional model, from its layers' static shapes.

Convention: only convolutions and dense layers count ("GFLOPs for convolution and linear layers only", as
the HRNet-codebase READMEs say), one multiply-add = 2 FLOPs, biases ignored. Many pose papers' "GFLOPs"
columns are really multiply-adds; compare those with `multiply_adds_per_image`.
`include_elementwise=True` also counts BatchNormalization (2 per element: scale, shift) and Add
(1 per element per extra input); ReLU, pooling, upsampling and rescaling stay free.
"""

from __future__ import annotations

import math

import keras
from keras import layers

_CONV_TYPES = (layers.Conv1D, layers.Conv2D, layers.Conv3D, layers.DepthwiseConv2D)


def _output_elements(layer) -> int:
    """Elements of the layer's (single) output per image: its shape without the batch axis."""
    shape = layer.output.shape[1:]
    if any(d is None for d in shape):
        raise ValueError(f"flops: layer {layer.name!r} has a dynamic output shape {tuple(shape)}; "
                         "build the model with a fixed input size")
    return math.prod(shape)


def _layer_multiply_adds(layer) -> int:
    if isinstance(layer, layers.SeparableConv2D):
        out_pixels = _output_elements(layer) // layer.output.shape[-1]
        return out_pixels * (math.prod(layer.depthwise_kernel.shape) + math.prod(layer.pointwise_kernel.shape))
    if isinstance(layer, layers.Conv2DTranspose):
        # Every input pixel scatters a full kernel: kernel (kh, kw, out, in).
        in_pixels = math.prod(layer.input.shape[1:-1])
        return in_pixels * math.prod(layer.kernel.shape)
    if isinstance(layer, _CONV_TYPES):
        # Kernel (k..., in/groups, out) or depthwise (k..., in, multiplier): one MAC per kernel entry per
        # output position.
        out_positions = _output_elements(layer) // layer.output.shape[-1]
        return out_positions * math.prod(layer.kernel.shape)
    if isinstance(layer, layers.Dense):
        out_rows = _output_elements(layer) // layer.output.shape[-1]
        return out_rows * math.prod(layer.kernel.shape)
    return 0


def _layer_elementwise_ops(layer) -> int:
    if isinstance(layer, layers.BatchNormalization):
        return 2 * _output_elements(layer)
    if isinstance(layer, layers.Add):
        return (len(layer.input) - 1) * _output_elements(layer)
    return 0


def _walk(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer)
        else:
            yield layer


def multiply_adds_per_image(model: keras.Model) -> int:
    """Multiply-accumulates of all convolutions and dense layers for one image (batch of 1)."""
    return sum(_layer_multiply_adds(layer) for layer in _walk(model))


def flops_per_image(model: keras.Model, include_elementwise: bool = False) -> int:
    """2 x multiply-adds of convolutions and dense layers (+ BN and Add ops if `include_elementwise`)."""
    total = 2 * multiply_adds_per_image(model)
    if include_elementwise:
        total += sum(_layer_elementwise_ops(layer) for layer in _walk(model))
    return total

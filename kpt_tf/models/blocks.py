"""Reusable building blocks of the pose networks (stacked hourglass, part-based branches, ...).

Every block takes a tensor and a name prefix and creates layers whose names are derived from that prefix
only, so two networks built from the same blocks share layer names wherever they share structure: that is
what KPTransfer's copy-by-name relies on.
"""

from __future__ import annotations

import math

import keras
from keras import layers

# PyTorch's BatchNorm2d defaults: running = 0.9 * running + 0.1 * batch, eps 1e-5 (Keras' own: 0.99, 1e-3).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def conv(filters: int, kernel_size: int, fan_in_channels: int, name: str, strides: int = 1,
         padding: str = "same", dtype=None) -> layers.Conv2D:
    """Conv with bias, initialised like PyTorch's / Torch7's default: weights and bias U(+-1/sqrt(fan_in)).

    Both reference implementations train with that default, so we keep their scale at initialisation
    (VarianceScaling(1/3, fan_in, uniform) is exactly kaiming_uniform(a=sqrt(5))).
    """
    bound = 1.0 / math.sqrt(kernel_size * kernel_size * fan_in_channels)
    layer_class = PointwiseConv2D if kernel_size == 1 and strides == 1 else layers.Conv2D
    return layer_class(
        filters, kernel_size, strides=strides, padding=padding, use_bias=True,
        kernel_initializer=keras.initializers.VarianceScaling(
            scale=1.0 / 3.0, mode="fan_in", distribution="uniform"),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound),
        name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="kpt_tf")
class PointwiseConv2D(layers.Conv2D):
    """Keras' Conv2D (same variables, names and config) for 1x1 kernels at stride 1, computed as one matmul of
    the flattened positions by the kernel.

    TF's CPU kernels for a 1x1 convolution's two gradients take about twice its forward time each; a matmul's
    gradients are two matmuls of its own cost (BUILD_NOTES.md, "Speed against PyTorch": 8 % of the demo
    network's training step). The numbers are the convolution's; other shapes keep Keras' path.
    """

    def call(self, inputs):
        if not is_pointwise(self) or self.groups != 1 or self.data_format != "channels_last":
            return super().call(inputs)
        y = convolve(self, inputs, self.kernel, self.bias if self.use_bias else None)
        return self.activation(y) if self.activation is not None else y


def is_pointwise(layer: layers.Conv2D) -> bool:
    """A 1x1 kernel at stride 1 without dilation: a matmul over the positions."""
    return all(tuple(value) == (1, 1) for value in (layer.kernel_size, layer.strides, layer.dilation_rate))


def convolve(layer: layers.Conv2D, inputs, kernel, bias=None):
    """What the convolution `layer` (channels last, one group) computes before its activation, with `kernel` and
    `bias` in place of its own variables: one matmul of the flattened positions for a 1x1 kernel at stride 1
    (`PointwiseConv2D`), else TF's convolution with the layer's strides, padding and dilation."""
    import tensorflow as tf

    kernel = tf.convert_to_tensor(kernel)
    if is_pointwise(layer):
        shape = tf.shape(inputs)
        y = tf.matmul(tf.reshape(inputs, [-1, kernel.shape[2]]), tf.reshape(kernel, kernel.shape[2:]))
        if bias is not None:   # on the 2-D product, where TF's graph optimiser fuses it into the matmul
            y = tf.nn.bias_add(y, tf.convert_to_tensor(bias))
        return tf.reshape(y, tf.concat([shape[:-1], [layer.filters]], 0))
    y = tf.nn.convolution(inputs, kernel, strides=tuple(layer.strides), padding=layer.padding.upper(),
                          dilations=tuple(layer.dilation_rate))
    return y if bias is None else tf.nn.bias_add(y, tf.convert_to_tensor(bias))


@keras.saving.register_keras_serializable(package="kpt_tf")
class FusedBatchNorm(layers.BatchNormalization):
    """Keras' BatchNormalization (same variables, names, config and moving-statistics rule) computed with TF's
    fused kernel (`FusedBatchNormV3` forward and gradient) for 4-D channels-last inputs.

    Keras 3 on TF runs batch norm as separate mean, variance, scale and shift ops (about a quarter of an
    hourglass training step on CPU, BUILD_NOTES.md). Masked inputs keep Keras' own path.
    The fused kernel returns the Bessel-corrected batch variance; it is converted back to the biased moment
    Keras' moving variance uses, so a trained model is the same whichever path computed it.

    Synchronized BN (training on several replicas) has its own path too: Keras' all-reduces three tensors per
    layer through `ReplicaContext.all_reduce`, whose graph-mode custom gradient walks every op upstream of
    the other replicas' inputs, once per layer, so tracing grows with the square of the network (first step of
    a 2-stack hourglass on 2 CPU replicas: 380 s with Keras' layer, 50 s with this one; bench/sync_bn_trace.py,
    BUILD_NOTES.md). Here one all-reduce per layer carries (sum, sum of squares, count), behind a gradient wall
    that stops that walk; its gradient is the all-reduce of the incoming gradients, as TF's own. Same moments,
    same gradients.
    """

    def call(self, inputs, training=None, mask=None):
        if mask is not None or len(inputs.shape) != 4 or self.axis not in (-1, 3) \
                or not (self.center and self.scale) or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, tf.float32)
        gamma, beta = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        if not (training and self.trainable):
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon, is_training=False)
            return tf.cast(y, self.compute_dtype)
        replicas = tf.distribute.get_replica_context()
        if self.synchronized and replicas is not None and replicas.num_replicas_in_sync > 1:
            mean, variance = synchronized_moments(x, replicas)
            y = tf.nn.batch_normalization(x, mean, variance, beta, gamma, self.epsilon)
        else:
            y, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=self.epsilon,
                                                                 is_training=True)
            count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
            variance = unbiased * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)


def synchronized_moments(x, replicas):
    """Batch mean and biased variance of channels-last `x` over the batches of all replicas (one all-reduce)."""
    import tensorflow as tf

    channels = x.shape[-1]
    count = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
    local = tf.concat([tf.reduce_sum(x, [0, 1, 2]), tf.reduce_sum(tf.square(x), [0, 1, 2]), count[None]], 0)

    # The stop_gradient inputs are what keep tracing linear: a custom gradient's graph-mode wrapper looks for
    # variables by walking back from its outputs, and a non-differentiable op ends the walk there instead of
    # in the other replicas' whole network.
    @tf.custom_gradient
    def all_sum(t):
        def grad(dy):
            return replicas.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(dy))
        return replicas.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(t)), grad

    total = all_sum(local)
    mean = total[:channels] / total[-1]
    variance = tf.maximum(total[channels:2 * channels] / total[-1] - tf.square(mean), 0.0)
    return mean, variance


# The batch-norm layer every block builds (bench/sync_bn_trace.py swaps in Keras' own for its comparison).
BATCH_NORM_LAYER = FusedBatchNorm


def batch_norm(name: str, synchronized: bool) -> layers.BatchNormalization:
    return BATCH_NORM_LAYER(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, synchronized=synchronized, name=name)


def residual(x, out_channels: int, prefix: str, synchronized_bn: bool):
    """Pre-activation bottleneck (bearpaw `Bottleneck`, expansion 2) with a 1x1 conv skip if widths differ.

    Layers: {prefix}_bn1, _relu1, _conv1, _bn2, _relu2, _conv2, _bn3, _relu3, _conv3, [_skip], _add.
    """
    in_channels = x.shape[-1]
    mid_channels = out_channels // 2
    y = batch_norm(f"{prefix}_bn1", synchronized_bn)(x)
    y = layers.ReLU(name=f"{prefix}_relu1")(y)
    y = conv(mid_channels, 1, in_channels, f"{prefix}_conv1")(y)
    y = batch_norm(f"{prefix}_bn2", synchronized_bn)(y)
    y = layers.ReLU(name=f"{prefix}_relu2")(y)
    y = conv(mid_channels, 3, mid_channels, f"{prefix}_conv2")(y)
    y = batch_norm(f"{prefix}_bn3", synchronized_bn)(y)
    y = layers.ReLU(name=f"{prefix}_relu3")(y)
    y = conv(out_channels, 1, mid_channels, f"{prefix}_conv3")(y)
    skip = x
    if in_channels != out_channels:
        skip = conv(out_channels, 1, in_channels, f"{prefix}_skip")(x)
    return layers.Add(name=f"{prefix}_add")([y, skip])


def residuals(x, channels: int, prefix: str, num_blocks: int, synchronized_bn: bool):
    """`num_blocks` residuals named {prefix}_res1 .. {prefix}_res{num_blocks}."""
    for r in range(1, num_blocks + 1):
        x = residual(x, channels, f"{prefix}_res{r}", synchronized_bn)
    return x


def hourglass(x, level: int, prefix: str, num_blocks: int, synchronized_bn: bool):
    """One hourglass of depth `level` (recursive, as the authors' `hourglass(n, f, inp)`; levels count down
    to 1): {prefix}_up{d}, _pool{d}, _down{d}, _bottom (lowest level), _low{d}, _upsample{d}, _merge{d}."""
    channels = x.shape[-1]
    upper = residuals(x, channels, f"{prefix}_up{level}", num_blocks, synchronized_bn)
    lower = layers.MaxPooling2D(2, strides=2, name=f"{prefix}_pool{level}")(x)
    lower = residuals(lower, channels, f"{prefix}_down{level}", num_blocks, synchronized_bn)
    if level > 1:
        lower = hourglass(lower, level - 1, prefix, num_blocks, synchronized_bn)
    else:
        lower = residuals(lower, channels, f"{prefix}_bottom", num_blocks, synchronized_bn)
    lower = residuals(lower, channels, f"{prefix}_low{level}", num_blocks, synchronized_bn)
    lower = layers.UpSampling2D(2, interpolation="nearest", name=f"{prefix}_upsample{level}")(lower)
    return layers.Add(name=f"{prefix}_merge{level}")([upper, lower])


def conv_bn_relu(x, channels: int, prefix: str, synchronized_bn: bool):
    """1x1 conv, BN, ReLU ({prefix}_conv, _bn, _relu): the hourglass' "fc" after each stack."""
    y = conv(channels, 1, x.shape[-1], f"{prefix}_conv")(x)
    y = batch_norm(f"{prefix}_bn", synchronized_bn)(y)
    return layers.ReLU(name=f"{prefix}_relu")(y)


def heatmap_head(x, num_joints: int, name: str):
    """1x1 conv to one heatmap per joint, float32 so the loss and decoding see full precision under
    mixed_float16."""
    return conv(num_joints, 1, x.shape[-1], name, dtype="float32")(x)

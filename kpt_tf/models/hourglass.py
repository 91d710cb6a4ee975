"""Stacked hourglass network (Newell et al., ECCV 2016) as a Keras 3 functional model.

The structure follows bearpaw/pytorch-pose `HourglassNet` (itself a port of the authors' Torch code) layer
for layer, so parameter counts match it exactly:

* pre-activation bottleneck residual: BN-ReLU-1x1 conv C/2, BN-ReLU-3x3 conv C/2, BN-ReLU-1x1 conv C, plus
  a 1x1 conv skip when the channel count changes; every conv has a bias (as in both references);
* stem: 7x7/2 conv 64, BN, ReLU, residual 64->128, 2x2 max-pool, residual 128->128, residual 128->C
  (fixed widths as in bearpaw; `stem="scaled"` uses C/4 and C/2 instead, as FPD's code does);
* per stack: a depth-`depth` hourglass, `num_blocks` residuals, 1x1 conv-BN-ReLU ("fc"), a 1x1 conv head to
  the joints; between stacks the features (1x1 conv) and the heatmaps (1x1 conv) are added to the stack input.

Layer names (stable across builds, independent of the number of joints; stacks are 0-based like the indices
of bearpaw's state_dict, hourglass levels run from `depth` at the stack's input resolution down to 1):

    image (input), input_rescale           uint8-range pixels -> [0, 1]
    stem_pad, stem_conv, stem_bn, stem_relu, stem_pool, stem_res{1,2,3}_*
    hg{s}_up{d}_res{r}_*                   upper branch at level d          (bearpaw hg[s].hg[d-1][0])
    hg{s}_pool{d}                          2x2 max-pool into level d-1
    hg{s}_down{d}_res{r}_*                 residuals after that pool        (bearpaw hg[s].hg[d-1][1])
    hg{s}_bottom_res{r}_*                  extra residuals at the lowest level (bearpaw hg[s].hg[0][3])
    hg{s}_low{d}_res{r}_*                  residuals before upsampling      (bearpaw hg[s].hg[d-1][2])
    hg{s}_upsample{d}, hg{s}_merge{d}      nearest x2 upsampling, upper + lower branch
    stack{s}_res{r}_*                      residuals after the hourglass    (bearpaw res[s])
    stack{s}_fc_conv, stack{s}_fc_bn, stack{s}_fc_relu                      (bearpaw fc[s])
    head{s}                                1x1 conv to the joints, float32  (bearpaw score[s])
    reinject{s}_features, reinject{s}_heatmaps, reinject{s}_add             (bearpaw fc_[s], score_[s])

and inside a residual `{p}`: {p}_bn1, {p}_relu1, {p}_conv1, {p}_bn2, {p}_relu2, {p}_conv2, {p}_bn3,
{p}_relu3, {p}_conv3, {p}_skip (only when channels change), {p}_add. Residual indices r run 1..num_blocks.
Variables are `<layer name>/<weight name>`, e.g. `stem_conv/kernel`, `stack0_fc_bn/moving_mean`.
"""

from __future__ import annotations

import math

import keras
from keras import layers

# PyTorch's BatchNorm2d defaults: running = 0.9 * running + 0.1 * batch, eps 1e-5 (Keras' own: 0.99, 1e-3).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
STEM_WIDTH = 64
STEM_RESIDUAL_WIDTH = 128
# Stem widths (7x7 conv, first two residuals) per stem kind: bearpaw's fixed 64/128, or scaled with the
# feature width C as FPD's code does (C/4, C/2): for narrow networks the fixed stem costs more than the
# hourglasses (2 x 64 at 128 px: the stem's 128-wide residual at 64x64 is half of all FLOPs).
STEM_WIDTHS = {
    "bearpaw": lambda channels: (STEM_WIDTH, STEM_RESIDUAL_WIDTH),
    "scaled": lambda channels: (max(channels // 4, 8), max(channels // 2, 8)),
}
# Spatial reduction of the stem (7x7/2 conv, then a 2x2 max-pool): 256 px in, 64 px heatmaps out.
OUTPUT_STRIDE = 4


def _conv(filters: int, kernel_size: int, fan_in_channels: int, name: str, strides: int = 1,
          padding: str = "same", dtype=None) -> layers.Conv2D:
    """Conv with bias, initialised like PyTorch's / Torch7's default: weights and bias U(+-1/sqrt(fan_in)).

    Both reference implementations train with that default, so we keep their scale at initialisation
    (VarianceScaling(1/3, fan_in, uniform) is exactly kaiming_uniform(a=sqrt(5))).
    """
    bound = 1.0 / math.sqrt(kernel_size * kernel_size * fan_in_channels)
    return layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=True,
        kernel_initializer=keras.initializers.VarianceScaling(
            scale=1.0 / 3.0, mode="fan_in", distribution="uniform"),
        bias_initializer=keras.initializers.RandomUniform(-bound, bound),
        name=name, dtype=dtype)


def _batch_norm(name: str, synchronized: bool) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                     synchronized=synchronized, name=name)


def _residual(x, out_channels: int, prefix: str, synchronized_bn: bool):
    """Pre-activation bottleneck (bearpaw `Bottleneck`, expansion 2) with a 1x1 conv skip if widths differ."""
    in_channels = x.shape[-1]
    mid_channels = out_channels // 2
    y = _batch_norm(f"{prefix}_bn1", synchronized_bn)(x)
    y = layers.ReLU(name=f"{prefix}_relu1")(y)
    y = _conv(mid_channels, 1, in_channels, f"{prefix}_conv1")(y)
    y = _batch_norm(f"{prefix}_bn2", synchronized_bn)(y)
    y = layers.ReLU(name=f"{prefix}_relu2")(y)
    y = _conv(mid_channels, 3, mid_channels, f"{prefix}_conv2")(y)
    y = _batch_norm(f"{prefix}_bn3", synchronized_bn)(y)
    y = layers.ReLU(name=f"{prefix}_relu3")(y)
    y = _conv(out_channels, 1, mid_channels, f"{prefix}_conv3")(y)
    skip = x
    if in_channels != out_channels:
        skip = _conv(out_channels, 1, in_channels, f"{prefix}_skip")(x)
    return layers.Add(name=f"{prefix}_add")([y, skip])


def _residuals(x, channels: int, prefix: str, num_blocks: int, synchronized_bn: bool):
    for r in range(1, num_blocks + 1):
        x = _residual(x, channels, f"{prefix}_res{r}", synchronized_bn)
    return x


def _hourglass(x, level: int, stack: int, num_blocks: int, synchronized_bn: bool):
    """One hourglass level (recursive, as the authors' `hourglass(n, f, inp)`); `level` counts down to 1."""
    channels = x.shape[-1]
    p = f"hg{stack}"
    upper = _residuals(x, channels, f"{p}_up{level}", num_blocks, synchronized_bn)
    lower = layers.MaxPooling2D(2, strides=2, name=f"{p}_pool{level}")(x)
    lower = _residuals(lower, channels, f"{p}_down{level}", num_blocks, synchronized_bn)
    if level > 1:
        lower = _hourglass(lower, level - 1, stack, num_blocks, synchronized_bn)
    else:
        lower = _residuals(lower, channels, f"{p}_bottom", num_blocks, synchronized_bn)
    lower = _residuals(lower, channels, f"{p}_low{level}", num_blocks, synchronized_bn)
    lower = layers.UpSampling2D(2, interpolation="nearest", name=f"{p}_upsample{level}")(lower)
    return layers.Add(name=f"{p}_merge{level}")([upper, lower])


def build_hourglass(num_stacks: int, channels: int, num_joints: int, depth: int = 4, num_blocks: int = 1,
                    input_size: int = 256, synchronized_bn: bool = False, name: str = "hourglass",
                    model_class=keras.Model, stem: str = "bearpaw") -> keras.Model:
    """Stacked hourglass; input float32 [B, S, S, 3] pixels in 0..255, outputs `num_stacks` heatmaps
    [B, S/4, S/4, num_joints] (float32 under any dtype policy), one per stack, last = final prediction.

    `synchronized_bn` makes every BatchNormalization synchronise its batch statistics across replicas.
    `model_class` (a keras.Model subclass, e.g. one overriding train_step) is built functionally.
    """
    for arg_name, value in (("num_stacks", num_stacks), ("channels", channels), ("num_joints", num_joints),
                            ("depth", depth), ("num_blocks", num_blocks), ("input_size", input_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"build_hourglass: {arg_name} must be a positive int, got {value!r}")
    if channels % 2:
        raise ValueError(f"build_hourglass: channels must be even (bottleneck uses channels/2), got {channels}")
    granularity = OUTPUT_STRIDE * 2 ** depth
    if input_size % granularity:
        raise ValueError(f"build_hourglass: input_size {input_size} must be a multiple of {granularity} "
                         f"(stride {OUTPUT_STRIDE} stem, then {depth} 2x poolings)")

    if stem not in STEM_WIDTHS:
        raise ValueError(f"build_hourglass: stem must be one of {sorted(STEM_WIDTHS)}, got {stem!r}")
    stem_width, stem_residual_width = STEM_WIDTHS[stem](channels)
    image = keras.Input(shape=(input_size, input_size, 3), dtype="float32", name="image")
    x = layers.Rescaling(1.0 / 255.0, name="input_rescale")(image)
    # PyTorch's padding=3 on both sides; Keras' "same" would pad 2 before / 3 after for stride 2 and shift
    # the whole feature grid by one input pixel relative to bearpaw's (and break weight conversion).
    x = layers.ZeroPadding2D(3, name="stem_pad")(x)
    x = _conv(stem_width, 7, 3, "stem_conv", strides=2, padding="valid")(x)
    x = _batch_norm("stem_bn", synchronized_bn)(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = _residual(x, stem_residual_width, "stem_res1", synchronized_bn)
    x = layers.MaxPooling2D(2, strides=2, name="stem_pool")(x)
    x = _residual(x, stem_residual_width, "stem_res2", synchronized_bn)
    x = _residual(x, channels, "stem_res3", synchronized_bn)

    heatmaps = []
    for s in range(num_stacks):
        y = _hourglass(x, depth, s, num_blocks, synchronized_bn)
        y = _residuals(y, channels, f"stack{s}", num_blocks, synchronized_bn)
        y = _conv(channels, 1, channels, f"stack{s}_fc_conv")(y)
        y = _batch_norm(f"stack{s}_fc_bn", synchronized_bn)(y)
        y = layers.ReLU(name=f"stack{s}_fc_relu")(y)
        # float32 heads: the loss and decoding see full-precision heatmaps under mixed_float16.
        score = _conv(num_joints, 1, channels, f"head{s}", dtype="float32")(y)
        heatmaps.append(score)
        if s < num_stacks - 1:
            features_back = _conv(channels, 1, channels, f"reinject{s}_features")(y)
            heatmaps_back = _conv(channels, 1, num_joints, f"reinject{s}_heatmaps")(score)
            x = layers.Add(name=f"reinject{s}_add")([x, features_back, heatmaps_back])

    return model_class(inputs=image, outputs=heatmaps, name=name)


def trainable_parameter_count(model: keras.Model) -> int:
    """Trainable weights only (BN moving mean/variance are non-trainable), like PyTorch's parameters()."""
    return int(sum(math.prod(v.shape) for v in model.trainable_weights))

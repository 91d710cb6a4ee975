"""Stacked hourglass network (Newell et al., ECCV 2016) as a Keras 3 functional model.

The structure follows bearpaw/pytorch-pose `HourglassNet` (itself a port of the authors' Torch code) layer
for layer, so parameter counts match it exactly:

* pre-activation bottleneck residual: BN-ReLU-1x1 conv C/2, BN-ReLU-3x3 conv C/2, BN-ReLU-1x1 conv C, plus
  a 1x1 conv skip when the channel count changes; every conv has a bias (as in both references);
* stem: 7x7/2 conv W0, BN, ReLU, residual W0->W1, 2x2 max-pool, residual W1->2*W1 (middle width W1, 1x1
  projection), residual 2*W1->C (middle C/2, projection only when 2*W1 != C). bearpaw's constructor builds
  exactly this with W0, W1 = 64, 128 (its second stem residual takes `planes = inplanes` after the first set
  `inplanes` to 128, so the widening to 256 happens there, not in the third); `stem="scaled"` is FPD's code,
  the same construction with W0, W1 = C/4, C/2, so the third residual is C -> C without a projection;
* per stack: a depth-`depth` hourglass, `num_blocks` residuals, 1x1 conv-BN-ReLU ("fc"), a 1x1 conv head to
  the joints; between stacks the features (1x1 conv) and the heatmaps (1x1 conv) are added to the stack input.

Layer names (stable across builds, independent of the number of joints; stacks are 0-based like the indices
of bearpaw's state_dict, hourglass levels run from `depth` at the stack's input resolution down to 1):

    image (input), input_rescale           0..255 RGB -> ([0, 1] - `input_mean`) / `input_std` (0, 1 unless imported)
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

import re

import keras
from keras import layers

from kpt_tf.models import blocks
from kpt_tf.models.registry import Architecture, register
from kpt_tf.registry import ConfigSection

STEM_WIDTH = 64
STEM_RESIDUAL_WIDTH = 128
# Stem widths (W0: the 7x7 conv, W1: the first residual's output; the second residual doubles W1) per stem
# kind: bearpaw's fixed 64/128, or scaled with the feature width C as FPD's code does (C/4, C/2; at C = 256
# both are 64/128). For narrow networks the fixed stem costs more than the hourglasses (BUILD_NOTES.md,
# "Stem"). The floor of 8 only matters below C = 32, which FPD's code never builds.
STEM_WIDTHS = {
    "bearpaw": lambda channels: (STEM_WIDTH, STEM_RESIDUAL_WIDTH),
    "scaled": lambda channels: (max(channels // 4, 8), max(channels // 2, 8)),
}


def stem_kind(conv_width: int, residual_width: int, channels: int) -> str | None:
    """The stem kind whose widths (W0, W1) at feature width `channels` are these; bearpaw's first when both
    fit (C = 256, where FPD's stem is bearpaw's); None when neither does."""
    for kind, widths in STEM_WIDTHS.items():
        if widths(channels) == (conv_width, residual_width):
            return kind
    return None
# Spatial reduction of the stem (7x7/2 conv, then a 2x2 max-pool): 256 px in, 64 px heatmaps out.
OUTPUT_STRIDE = 4
# Layers whose channels follow the joint subset, with the axis of each weight that indexes joints
# (None: a weight of such a layer that does not depend on the joints, copied along with the mapping).
_HEAD = re.compile(r"^head\d+$")
_REINJECT_HEATMAPS = re.compile(r"^reinject\d+_heatmaps$")


def build_hourglass(num_stacks: int, channels: int, num_joints: int, depth: int = 4, num_blocks: int = 1,
                    input_size: int = 256, synchronized_bn: bool = False, name: str = "hourglass",
                    model_class=keras.Model, stem: str = "bearpaw", input_mean=(0.0, 0.0, 0.0),
                    input_std=(1.0, 1.0, 1.0)) -> keras.Model:
    """Stacked hourglass; input float32 [B, S, S, 3] pixels in 0..255, outputs `num_stacks` heatmaps
    [B, S/4, S/4, num_joints] (float32 under any dtype policy), one per stack, last = final prediction.

    `synchronized_bn` makes every BatchNormalization synchronise its batch statistics across replicas.
    `model_class` (a keras.Model subclass, e.g. one overriding train_step) is built functionally.
    """
    check_sizes(dict(num_stacks=num_stacks, channels=channels, num_joints=num_joints, depth=depth,
                     num_blocks=num_blocks, input_size=input_size), "build_hourglass: ")

    image = keras.Input(shape=(input_size, input_size, 3), dtype="float32", name="image")
    x = build_stem(image, channels, stem, input_mean, synchronized_bn, input_std)
    heatmaps = []
    for s in range(num_stacks):
        x, score = build_stack(x, f"hg{s}", f"stack{s}", f"head{s}", f"reinject{s}", num_joints, depth, num_blocks,
                               synchronized_bn, reinject=s < num_stacks - 1)
        heatmaps.append(score)
    return model_class(inputs=image, outputs=heatmaps, name=name)


def check_sizes(sizes: dict, where: str) -> None:
    """The size rules of a stacked hourglass (and of every network built from its stem and stacks): every value a
    positive int, `channels` (and `branch_channels`) even, `input_size` a multiple of the stem's stride times the
    `depth` poolings. ValueError starting with `where` + the key."""
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}{key} must be a positive int, got {value!r}")
    for key in ("channels", "branch_channels"):
        if sizes.get(key, 0) % 2:
            raise ValueError(f"{where}{key} must be even (the bottleneck halves it), got {sizes[key]}")
    granularity = OUTPUT_STRIDE * 2 ** sizes["depth"]
    if sizes["input_size"] % granularity:
        raise ValueError(f"{where}input_size {sizes['input_size']} must be a multiple of {granularity} "
                         f"(stride {OUTPUT_STRIDE} stem, then {sizes['depth']} 2x poolings)")


def check_input(stem: str, input_mean, input_std, where: str) -> None:
    """The stem kind is known; the RGB mean and std are three numbers each, the std positive."""
    if stem not in STEM_WIDTHS:
        raise ValueError(f"{where}stem must be one of {sorted(STEM_WIDTHS)}, got {stem!r}")
    for key, value in (("input_mean", input_mean), ("input_std", input_std)):
        if len(value) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{where}{key} must be 3 numbers (R, G, B in [0, 1] units), got {value!r}")
    if min(input_std) <= 0:
        raise ValueError(f"{where}input_std must be positive, got {input_std!r}")


def build_stem(image, channels: int, stem: str = "bearpaw", input_mean=(0.0, 0.0, 0.0), synchronized_bn: bool = False,
               input_std=(1.0, 1.0, 1.0)):
    """input_rescale and stem_* layers: 0..255 pixels [S, S, 3] -> features [S/4, S/4, channels]."""
    check_input(stem, input_mean, input_std, "build_hourglass: ")
    stem_width, stem_residual_width = STEM_WIDTHS[stem](channels)
    # `input_mean` and `input_std` (per RGB channel, in [0, 1] units) are part of the model, so every kpt_tf network
    # takes 0..255 RGB: bearpaw's networks were trained on [0, 1] minus the MPII mean, FPD's on ImageNet-normalised
    # pixels (kpt_tf.interop.bearpaw.FORMATS).
    mean = [float(v) for v in input_mean]
    std = [float(v) for v in input_std]
    scale = [1.0 / (255.0 * s) for s in std] if any(s != 1.0 for s in std) else 1.0 / 255.0
    offset = [-m / s for m, s in zip(mean, std)] if any(mean) else 0.0
    x = layers.Rescaling(scale, offset=offset, name="input_rescale")(image)
    # PyTorch's padding=3 on both sides; Keras' "same" would pad 2 before / 3 after for stride 2 and shift
    # the whole feature grid by one input pixel relative to bearpaw's (and break weight conversion).
    x = layers.ZeroPadding2D(3, name="stem_pad")(x)
    x = blocks.conv(stem_width, 7, 3, "stem_conv", strides=2, padding="valid")(x)
    x = blocks.batch_norm("stem_bn", synchronized_bn)(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = blocks.residual(x, stem_residual_width, "stem_res1", synchronized_bn)
    x = layers.MaxPooling2D(2, strides=2, name="stem_pool")(x)
    x = blocks.residual(x, 2 * stem_residual_width, "stem_res2", synchronized_bn)
    return blocks.residual(x, channels, "stem_res3", synchronized_bn)


def build_stack(x, hourglass_prefix: str, stack_prefix: str, head_name: str, reinject_prefix: str, num_joints: int,
                depth: int, num_blocks: int, synchronized_bn: bool, reinject: bool):
    """One stack at the width of `x`: hourglass, residuals, fc, a head of `num_joints`; with `reinject`, the
    features and heatmaps mapped back and added to `x` for the next stack. Returns (next input, heatmaps)."""
    channels = x.shape[-1]
    y = blocks.hourglass(x, depth, hourglass_prefix, num_blocks, synchronized_bn)
    y = blocks.residuals(y, channels, stack_prefix, num_blocks, synchronized_bn)
    y = blocks.conv_bn_relu(y, channels, f"{stack_prefix}_fc", synchronized_bn)
    score = blocks.heatmap_head(y, num_joints, head_name)
    if reinject:
        features_back = blocks.conv(channels, 1, channels, f"{reinject_prefix}_features")(y)
        heatmaps_back = blocks.conv(channels, 1, num_joints, f"{reinject_prefix}_heatmaps")(score)
        x = layers.Add(name=f"{reinject_prefix}_add")([x, features_back, heatmaps_back])
    return x, score


def joint_layout(layer_name: str) -> dict | None:
    """Which weights of a layer index joints, and on which axis; None for a layer independent of the subset.

    head{s}: kernel [1, 1, C, J], bias [J]; reinject{s}_heatmaps: kernel [1, 1, J, C], bias [C].
    """
    if _HEAD.match(layer_name):
        return {"kernel": 3, "bias": 0}
    if _REINJECT_HEATMAPS.match(layer_name):
        return {"kernel": 2, "bias": None}
    return None


def check_section(m) -> None:
    """The hourglass' `config.model`, filled: the sizes and the input normalisation."""
    check_sizes({k: m[k] for k in ("num_stacks", "channels", "depth", "num_blocks", "input_size")}, "config model.")
    check_input(m.stem, tuple(m.input_mean), tuple(m.input_std), "config model.")


# `config.model` of a stacked hourglass (`model.name = "hourglass"`), declared once: configs/ start from it
# (`kpt_tf.models.model_section`), and a config.json written before a key existed is filled from it.
SECTION = ConfigSection("model", "architecture hourglass", dict(
    name="hourglass",
    num_stacks=2,
    channels=256,                # features of every stack (C)
    depth=4,                     # 2x poolings inside each hourglass
    num_blocks=1,                # residuals per hourglass level and after each hourglass
    input_size=256,              # input crop side in pixels; heatmaps are input_size / OUTPUT_STRIDE
    stem="bearpaw",              # bearpaw: fixed 64/128-wide stem; scaled: C/4, C/2 (FPD's code); STEM_WIDTHS
    # RGB mean and std in [0, 1] units, applied inside the model (bearpaw imports: MPII's mean; FPD: ImageNet's)
    input_mean=(0.0, 0.0, 0.0),
    input_std=(1.0, 1.0, 1.0),
), check=check_section)


def build_from_config(model_config, joints, synchronized_bn: bool = False) -> keras.Model:
    m = model_config
    return build_hourglass(num_stacks=int(m.num_stacks), channels=int(m.channels), num_joints=len(joints),
                           depth=int(m.depth), num_blocks=int(m.num_blocks), input_size=int(m.input_size),
                           synchronized_bn=synchronized_bn, stem=str(m.stem), input_mean=tuple(m.input_mean),
                           input_std=tuple(m.input_std))


register(Architecture(name="hourglass", section=SECTION, build=build_from_config,
                      output_stride=lambda model_config: OUTPUT_STRIDE, joint_layout=joint_layout))

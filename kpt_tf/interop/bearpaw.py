"""PyTorch stacked-hourglass checkpoints -> kpt_tf weights, by name, every tensor accounted for.

Two formats share one key layout (`FORMATS`): bearpaw/pytorch-pose's `HourglassNet` and the FPD authors'
(ilovepose/fast-human-pose-estimation.pytorch, `lib/models/hourglass.py`), which is bearpaw's constructor with the
stem widths scaled by NUM_FEATURES (C/4, C/2; at C = 256 the two networks are the same). They differ in what the
network was fed: bearpaw RGB in [0, 1] minus the MPII mean; FPD (HRNet's data code, `COLOR_RGB: false` in its
MPII configs) BGR as OpenCV reads it, normalised by ImageNet's mean and std. Both are moved into the imported
model (its `input_rescale` layer, and the first conv's input channels reversed for BGR), so it takes 0..255 RGB.

bearpaw's `HourglassNet` state_dict, and our layer for each (stacks s 0-based, hourglass level d = depth..1 is
bearpaw's `hg[d-1]`, residual r 0-based there and 1-based here):

    conv1, bn1                          stem_conv, stem_bn
    layer1.0, layer2.0, layer3.0        stem_res1, stem_res2, stem_res3
    hg.{s}.hg.{d-1}.{0,1,2}.{r}         hg{s}_up{d}_res{r+1}, hg{s}_down{d}_res{r+1}, hg{s}_low{d}_res{r+1}
    hg.{s}.hg.0.3.{r}                   hg{s}_bottom_res{r+1}
    res.{s}.{r}                         stack{s}_res{r+1}
    fc.{s}.0, fc.{s}.1                  stack{s}_fc_conv, stack{s}_fc_bn
    score.{s}, fc_.{s}, score_.{s}      head{s}, reinject{s}_features, reinject{s}_heatmaps
  inside a residual: bn1, conv1, bn2, conv2, bn3, conv3, downsample.0 -> _bn1, _conv1, ..., _conv3, _skip

Conv weights OIHW -> HWIO; BN weight, bias, running_mean, running_var -> gamma, beta, moving_mean,
moving_variance (`num_batches_tracked` is PyTorch bookkeeping, reported as ignored). A checkpoint is a
`{"state_dict": ...}` dict (bearpaw's `*.pth.tar`, FPD's `checkpoint.pth`) or a bare state_dict (FPD's
`model_best.pth`, `final_state.pth`), with or without DataParallel's `module.` prefix, in PyTorch's zip or legacy
serialisation. Loading uses `torch.load(weights_only=True)`: a checkpoint that would need to unpickle an object is
refused without running it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from kpt_tf.models.hourglass import stem_kind

# bearpaw's data/mpii/mean.pth.tar (RGB, [0, 1] units).
MPII_MEAN_RGB = (0.440442830324173, 0.4440267086029053, 0.4326828420162201)
# torchvision's ImageNet normalisation, which HRNet's and FPD's training scripts apply channel by channel.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HOURGLASS_DEPTH = 4  # bearpaw's Hourglass(block, num_blocks, planes, 4)


@dataclass(frozen=True)
class CheckpointFormat:
    """What a checkpoint's network was fed and trained on, beyond its weights.

    `input_mean` / `input_std`: per channel of the tensor the network saw, [0, 1] units, in `channel_order`.
    """
    name: str
    input_mean: tuple
    input_std: tuple
    channel_order: str          # "rgb" | "bgr": the order of the first conv's input channels
    sigma: float                # Gaussian target sigma in heatmap pixels (the codec of the workdir)

    def rgb_normalisation(self, channel_order: str | None = None):
        """(mean, std) per RGB channel for the model's input_rescale layer."""
        order = channel_order or self.channel_order
        if order == "bgr":   # the i-th statistic belongs to the i-th BGR channel: reverse it into RGB order
            return tuple(reversed(self.input_mean)), tuple(reversed(self.input_std))
        return tuple(self.input_mean), tuple(self.input_std)


FORMATS = {
    # pose/datasets/mpii.py: RGB [0, 1], minus mean.pth.tar, no std; sigma 1 (its README's MPII models).
    "bearpaw": CheckpointFormat("bearpaw", MPII_MEAN_RGB, (1.0, 1.0, 1.0), "rgb", 1.0),
    # tools/fpd_train.py: transforms.Normalize(ImageNet) on cv2's BGR image (experiments/fpd_mpii/hourglass/*.yaml:
    # COLOR_RGB false); SIGMA 2.
    "fpd": CheckpointFormat("fpd", IMAGENET_MEAN, IMAGENET_STD, "bgr", 2.0),
}
CHANNEL_ORDERS = ("rgb", "bgr")

_RESIDUAL_PARTS = {"bn1": "bn1", "conv1": "conv1", "bn2": "bn2", "conv2": "conv2", "bn3": "bn3", "conv3": "conv3",
                   "downsample.0": "skip"}
_BN_WEIGHTS = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
_CONV_WEIGHTS = {"weight": "kernel", "bias": "bias"}
IGNORED_SUFFIX = "num_batches_tracked"


class CheckpointError(ValueError):
    """A checkpoint that cannot be imported (message names the file and the problem); nothing was written."""


def load_state_dict(path) -> dict[str, np.ndarray]:
    """The checkpoint's tensors as numpy, DataParallel's `module.` prefix removed. Needs PyTorch."""
    try:
        import torch
    except ImportError:
        raise CheckpointError("importing a PyTorch checkpoint needs PyTorch: pip install torch==2.13.0+cpu "
                              "(a CPU build is enough)") from None
    try:
        content = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path}: does not exist") from None
    except Exception as e:  # truncated file, a pickle that weights_only refuses, not a torch file...
        raise CheckpointError(f"checkpoint {path}: cannot be read as a weights-only PyTorch checkpoint "
                              f"({type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''})") from None
    state = content.get("state_dict", content) if isinstance(content, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"checkpoint {path}: holds no state_dict of tensors")
    out = {}
    for key, value in state.items():
        if not hasattr(value, "detach"):
            raise CheckpointError(f"checkpoint {path}: entry {key!r} is not a tensor")
        out[key[len("module."):] if key.startswith("module.") else key] = value.detach().cpu().numpy()
    return out


def infer_architecture(state: dict) -> dict:
    """num_stacks, num_blocks, channels, num_classes and the stem kind from the key names and shapes."""
    stacks = {int(m.group(1)) for k in state if (m := re.match(r"score\.(\d+)\.weight$", k))}
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"res\.0\.(\d+)\.bn1\.weight$", k))}
    stem_keys = ("conv1.weight", "layer1.0.conv3.weight")
    if not stacks or not blocks or any(k not in state or state[k].ndim != 4 for k in stem_keys):
        raise CheckpointError("not a bearpaw HourglassNet state_dict "
                              "(no conv1 / layer1.0 / score.{s} / res.0.{r} keys)")
    score = state["score.0.weight"]
    channels = int(score.shape[1])
    widths = (int(state["conv1.weight"].shape[0]), int(state["layer1.0.conv3.weight"].shape[0]))
    stem = stem_kind(*widths, channels)
    if stem is None:
        raise CheckpointError(f"stem widths {widths} (conv1, layer1) fit neither bearpaw's (64, 128) nor FPD's "
                              f"scaled (C/4, C/2) = ({channels // 4}, {channels // 2}) at C = {channels}")
    return {"num_stacks": max(stacks) + 1, "num_blocks": max(blocks) + 1, "channels": channels,
            "num_classes": int(score.shape[0]), "stem": stem}


def _residual_prefixes(num_stacks: int, num_blocks: int) -> dict[str, str]:
    """bearpaw module path -> our residual prefix, for every residual of the network."""
    out = {"layer1.0": "stem_res1", "layer2.0": "stem_res2", "layer3.0": "stem_res3"}
    for s in range(num_stacks):
        for r in range(num_blocks):
            out[f"res.{s}.{r}"] = f"stack{s}_res{r + 1}"
            for d in range(1, HOURGLASS_DEPTH + 1):
                for k, branch in enumerate(("up", "down", "low")):
                    out[f"hg.{s}.hg.{d - 1}.{k}.{r}"] = f"hg{s}_{branch}{d}_res{r + 1}"
            out[f"hg.{s}.hg.0.3.{r}"] = f"hg{s}_bottom_res{r + 1}"
    return out


def _layer_map(num_stacks: int, num_blocks: int) -> dict[str, tuple[str, str]]:
    """bearpaw module path -> (our layer name, "conv" | "bn")."""
    out = {"conv1": ("stem_conv", "conv"), "bn1": ("stem_bn", "bn")}
    for module, prefix in _residual_prefixes(num_stacks, num_blocks).items():
        for part, ours in _RESIDUAL_PARTS.items():
            out[f"{module}.{part}"] = (f"{prefix}_{ours}", "bn" if part.startswith("bn") else "conv")
    for s in range(num_stacks):
        out[f"fc.{s}.0"] = (f"stack{s}_fc_conv", "conv")
        out[f"fc.{s}.1"] = (f"stack{s}_fc_bn", "bn")
        out[f"score.{s}"] = (f"head{s}", "conv")
        out[f"fc_.{s}"] = (f"reinject{s}_features", "conv")
        out[f"score_.{s}"] = (f"reinject{s}_heatmaps", "conv")
    return out


def to_kpt_weights(state: dict, num_stacks: int, num_blocks: int, channel_order: str = "rgb"):
    """(our "layer/weight" -> value, checkpoint keys not used, checkpoint keys ignored as bookkeeping).

    `channel_order` "bgr": the first conv was fed BGR; its input channels are reversed so it takes RGB."""
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}")
    layers = _layer_map(num_stacks, num_blocks)
    weights, unused, ignored = {}, [], []
    for key, value in state.items():
        if key.endswith(IGNORED_SUFFIX):
            ignored.append(key)
            continue
        module, _, tensor = key.rpartition(".")
        target = layers.get(module)
        names = _CONV_WEIGHTS if target and target[1] == "conv" else _BN_WEIGHTS
        if target is None or tensor not in names:
            unused.append(key)
            continue
        if target[1] == "conv" and tensor == "weight":
            if value.ndim != 4:
                unused.append(key)
                continue
            if module == "conv1" and channel_order == "bgr":
                value = value[:, ::-1]
            value = np.transpose(value, (2, 3, 1, 0))   # OIHW -> HWIO
        weights[f"{target[0]}/{names[tensor]}"] = np.ascontiguousarray(value, np.float32)
    return weights, unused, ignored

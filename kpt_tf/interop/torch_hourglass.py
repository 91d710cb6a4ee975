"""A PyTorch stacked hourglass with bearpaw/pytorch-pose's module structure and state_dict key names, written here
from the architecture (pre-activation bottleneck with expansion 2, 4-level hourglasses, intermediate supervision).

Used to make checkpoints in bearpaw's layout for the import tests, and as the PyTorch peer of the same network in
bench/train_vs_pytorch.py. Needs PyTorch (an optional dependency: `pip install torch==2.13.0+cpu`).
`channels` and `stem_widths` generalise bearpaw's fixed 256 and (64, 128) so narrower networks (the demo's, with
FPD's scaled stem) can be compared too; the defaults are bearpaw's network. The stem is built as bearpaw's constructor
builds it: layer1 stem -> W1, layer2 W1 -> 2*W1 (middle width W1, with a projection), layer3 2*W1 -> C (middle C/2,
a projection only when 2*W1 != C). tests/kpt_tf/interop/test_torch_hourglass.py checks the state_dict against key names
and shapes read off bearpaw's own code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Bottleneck(nn.Module):
    def __init__(self, in_channels: int, mid: int):
        super().__init__()
        out = 2 * mid
        self.bn1, self.conv1 = nn.BatchNorm2d(in_channels), nn.Conv2d(in_channels, mid, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(mid), nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3, self.conv3 = nn.BatchNorm2d(mid), nn.Conv2d(mid, out, 1)
        self.downsample = nn.Sequential(nn.Conv2d(in_channels, out, 1)) if in_channels != out else None

    def forward(self, x):
        y = self.conv1(F.relu(self.bn1(x)))
        y = self.conv2(F.relu(self.bn2(y)))
        y = self.conv3(F.relu(self.bn3(y)))
        return y + (self.downsample(x) if self.downsample is not None else x)


def residuals(in_channels: int, mid: int, count: int) -> nn.Sequential:
    return nn.Sequential(*[Bottleneck(in_channels if i == 0 else 2 * mid, mid) for i in range(count)])


class Hourglass(nn.Module):
    def __init__(self, blocks: int, mid: int, depth: int = 4):
        super().__init__()
        levels = []
        for level in range(depth):
            branches = [residuals(2 * mid, mid, blocks) for _ in range(4 if level == 0 else 3)]
            levels.append(nn.ModuleList(branches))
        self.hg = nn.ModuleList(levels)

    def _forward(self, n, x):
        up = self.hg[n - 1][0](x)
        low = self.hg[n - 1][1](F.max_pool2d(x, 2, stride=2))
        low = self._forward(n - 1, low) if n > 1 else self.hg[n - 1][3](low)
        low = self.hg[n - 1][2](low)
        return up + F.interpolate(low, scale_factor=2)

    def forward(self, x):
        return self._forward(len(self.hg), x)


class HourglassNet(nn.Module):
    def __init__(self, num_stacks: int = 2, num_blocks: int = 1, num_classes: int = 16, channels: int = 256,
                 stem_widths: tuple[int, int] = (64, 128)):
        super().__init__()
        feats = channels // 2
        ch = channels
        stem, stem_res = stem_widths
        self.num_stacks = num_stacks
        self.conv1, self.bn1 = nn.Conv2d(3, stem, 7, stride=2, padding=3), nn.BatchNorm2d(stem)
        self.layer1, self.layer2 = residuals(stem, stem_res // 2, 1), residuals(stem_res, stem_res, 1)
        self.layer3 = residuals(2 * stem_res, feats, 1)
        self.hg = nn.ModuleList([Hourglass(num_blocks, feats) for _ in range(num_stacks)])
        self.res = nn.ModuleList([residuals(ch, feats, num_blocks) for _ in range(num_stacks)])
        self.fc = nn.ModuleList([nn.Sequential(nn.Conv2d(ch, ch, 1), nn.BatchNorm2d(ch), nn.ReLU())
                                 for _ in range(num_stacks)])
        self.score = nn.ModuleList([nn.Conv2d(ch, num_classes, 1) for _ in range(num_stacks)])
        self.fc_ = nn.ModuleList([nn.Conv2d(ch, ch, 1) for _ in range(num_stacks - 1)])
        self.score_ = nn.ModuleList([nn.Conv2d(num_classes, ch, 1) for _ in range(num_stacks - 1)])

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(F.max_pool2d(self.layer1(x), 2, stride=2)))
        out = []
        for i in range(self.num_stacks):
            y = self.fc[i](self.res[i](self.hg[i](x)))
            score = self.score[i](y)
            out.append(score)
            if i < self.num_stacks - 1:
                x = x + self.fc_[i](y) + self.score_[i](score)
        return out


def randomised(net: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and non-trivial BN statistics (eval mode), as a trained checkpoint would have."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(1000)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.75)
            elif name.endswith("running_mean"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif tensor.dtype.is_floating_point:
                fan_in = max(1, tensor[0].numel()) if tensor.ndim > 1 else 16
                tensor.copy_(torch.randn(tensor.shape, generator=generator) / fan_in ** 0.5)
    return net.eval()


def save_bearpaw_checkpoint(net: nn.Module, path, data_parallel: bool = True, legacy: bool = False) -> None:
    """bearpaw's layout: {"epoch", "arch", "state_dict" (DataParallel's `module.` prefix), "best_acc", ...};
    `legacy`: PyTorch's pre-1.6 serialisation, as bearpaw's released 2018 checkpoints were written."""
    state = {("module." + k if data_parallel else k): v for k, v in net.state_dict().items()}
    torch.save({"epoch": 100, "arch": "hg", "state_dict": state, "best_acc": 0.8}, str(path),
               _use_new_zipfile_serialization=not legacy)


def save_fpd_checkpoint(net: nn.Module, path) -> None:
    """The FPD authors' `model_best.pth` / `final_state.pth` layout: the bare state_dict, no `module.` prefix."""
    torch.save(net.state_dict(), str(path))

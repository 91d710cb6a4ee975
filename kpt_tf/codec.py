"""Gaussian heatmap targets and their decoding: the one codec used by training, evaluation and serving.

Coordinates (CONVENTIONS.md): 0-based pixels, pixel centres at integers, in the model input (`input_size`
square) and in the heatmap (`heatmap_size` square). Heatmap pixel i covers input pixels
[stride*i, stride*i + stride - 1], so its centre is input pixel stride*i + (stride - 1)/2 (1.5 for stride 4):

    input x  = stride * (u + 0.5) - 0.5          heatmap u = (x + 0.5) / stride - 0.5

This is the "pixel areas line up" convention (like `align_corners=False`). The reference code bases differ:
HRNet/mmpose-MSRA use u = x / stride (the heatmap pixel 0 centre sits on input pixel 0), half a heatmap pixel
off this grid, which is self-consistent for encode/decode but makes a mirrored heatmap land 0.75 px beside
the heatmap of the mirrored image: hence their one-pixel `shift_heatmap` in the flip test. bearpaw maps the
crop centre to res/2, truncates target positions to integers and adds +0.5 when decoding. Here mirroring is
exact on both grids (input x -> W-1-x is heatmap u -> w-1-u), so `flip_back(shift=False)` is the consistent
choice; `shift=True` reproduces HRNet for comparison.

Targets are placed at the sub-pixel heatmap position by default (`subpixel=True`, unbiased as in mmpose's
`unbiased_encoding`/DARK): the continuous Gaussian peaks at 1 exactly at the joint. `subpixel=False` rounds
to the nearest heatmap pixel first (HRNet: int(u + 0.5)), so the grid maximum is exactly 1. Either way the
Gaussian is cut to a (6 sigma + 1)-wide window, as in HRNet/bearpaw.

Weight rule (HRNet/bearpaw): a joint keeps its weight when any heatmap pixel centre lies inside its
+-3 sigma window in both x and y; a joint whose window lies completely outside the heatmap gets weight 0
and an all-zero heatmap, as does any joint with weight 0 or a non-finite position.

Everything is pure TF, vectorised over batch and joints (no Python loops), and compiles under XLA.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import tensorflow as tf

# Half-width of the Gaussian window and of the "still on the heatmap" test, in sigmas (HRNet, bearpaw).
WINDOW_SIGMAS = 3.0


def input_to_heatmap(points, input_size: int, heatmap_size: int):
    """Model-input pixel coordinates -> heatmap pixel coordinates (both with centres at integers)."""
    stride = float(input_size) / float(heatmap_size)
    return (tf.convert_to_tensor(points, tf.float32) + 0.5) / stride - 0.5


def heatmap_to_input(points, input_size: int, heatmap_size: int):
    """Heatmap pixel coordinates -> model-input pixel coordinates (inverse of `input_to_heatmap`)."""
    stride = float(input_size) / float(heatmap_size)
    return (tf.convert_to_tensor(points, tf.float32) + 0.5) * stride - 0.5


@dataclasses.dataclass(frozen=True)
class HeatmapCodec:
    """Joints in model-input pixels <-> Gaussian heatmaps [B, h, w, J] (see the module docstring)."""

    input_size: int = 256
    heatmap_size: int = 64
    sigma: float = 1.0
    subpixel: bool = True

    def __post_init__(self):
        if self.input_size <= 0 or self.heatmap_size <= 0:
            raise ValueError(f"HeatmapCodec: input_size {self.input_size} and heatmap_size "
                             f"{self.heatmap_size} must be positive")
        if self.heatmap_size > self.input_size:
            raise ValueError(f"HeatmapCodec: heatmap_size {self.heatmap_size} is larger than input_size "
                             f"{self.input_size}")
        if not self.sigma > 0:
            raise ValueError(f"HeatmapCodec: sigma must be > 0, got {self.sigma}")

    # --- config -----------------------------------------------------------------------------
    def get_config(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> "HeatmapCodec":
        return cls(**config)

    @property
    def stride(self) -> float:
        return self.input_size / self.heatmap_size

    # --- coordinate maps ----------------------------------------------------------------------
    def to_heatmap(self, points):
        """Input pixels -> heatmap pixels."""
        return input_to_heatmap(points, self.input_size, self.heatmap_size)

    def to_input(self, points):
        """Heatmap pixels -> input pixels."""
        return heatmap_to_input(points, self.input_size, self.heatmap_size)

    # --- encode -------------------------------------------------------------------------------
    def encode(self, joints, weights):
        """joints [B, J, 2] (input px), weights [B, J] -> (heatmaps [B, h, w, J] float32, weights [B, J]).

        Returned weights are the given weights, zeroed where the joint is off the heatmap (3 sigma rule)
        or not finite; their heatmaps are all zero.
        """
        joints = tf.convert_to_tensor(joints, tf.float32)
        weights = tf.convert_to_tensor(weights, tf.float32)
        size = self.heatmap_size
        sigma = float(self.sigma)
        window = WINDOW_SIGMAS * sigma

        finite = tf.reduce_all(tf.math.is_finite(joints), axis=-1)
        centre = self.to_heatmap(tf.where(finite[..., None], joints, tf.zeros_like(joints)))
        if not self.subpixel:
            centre = tf.floor(centre + 0.5)
        on_map = tf.reduce_all((centre >= -window) & (centre <= size - 1 + window), axis=-1)
        keep = finite & on_map & (weights > 0)

        grid = tf.range(size, dtype=tf.float32)                       # [w] == [h]
        offset = grid[None, None, :, None] - centre[:, :, None, :]    # [B, J, size, 2]
        profile = tf.exp(-tf.square(offset) / (2.0 * sigma * sigma))
        profile = tf.where(tf.abs(offset) <= window, profile, tf.zeros_like(profile))
        profile = profile * tf.cast(keep, tf.float32)[:, :, None, None]
        # Separable Gaussian: outer product of the y and x profiles, channels last.
        heatmaps = tf.einsum("bjy,bjx->byxj", profile[..., 1], profile[..., 0])
        return heatmaps, tf.where(keep, weights, tf.zeros_like(weights))

    # --- decode -------------------------------------------------------------------------------
    def decode(self, heatmaps):
        """heatmaps [B, h, w, J] -> (joints [B, J, 2] input px, scores [B, J] = heatmap maxima).

        Argmax, then a quarter-pixel step towards the higher neighbour, in x and y separately (the step
        along an axis is skipped when the maximum sits on that axis' border).
        """
        heatmaps = tf.cast(tf.convert_to_tensor(heatmaps), tf.float32)
        static = heatmaps.shape
        if static.rank != 4 or any(d is not None and d != self.heatmap_size for d in static[1:3]):
            raise ValueError(f"decode: expected heatmaps [B, {self.heatmap_size}, {self.heatmap_size}, J], "
                             f"got shape {static}")
        shape = tf.shape(heatmaps)
        height, width = shape[1], shape[2]
        flat = tf.reshape(tf.transpose(heatmaps, [0, 3, 1, 2]), [shape[0], shape[3], height * width])
        index = tf.argmax(flat, axis=-1, output_type=tf.int32)         # [B, J]
        scores = tf.reduce_max(flat, axis=-1)
        ix = index % width
        iy = index // width
        last = height * width - 1

        def value_at(offset):
            return tf.gather(flat, tf.clip_by_value(index + offset, 0, last), batch_dims=2)

        step_x = tf.sign(value_at(1) - value_at(-1)) * 0.25
        step_y = tf.sign(value_at(width) - value_at(-width)) * 0.25
        step_x = tf.where((ix > 0) & (ix < width - 1), step_x, tf.zeros_like(step_x))
        step_y = tf.where((iy > 0) & (iy < height - 1), step_y, tf.zeros_like(step_y))
        peaks = tf.stack([tf.cast(ix, tf.float32) + step_x, tf.cast(iy, tf.float32) + step_y], axis=-1)
        return self.to_input(peaks), scores

    # --- flip test ----------------------------------------------------------------------------
    @staticmethod
    def flip_back(heatmaps, flip_permutation: Sequence[int], shift: bool = False):
        """Heatmaps predicted on a mirrored image -> heatmaps of the original image.

        Mirrors horizontally and reorders channels: out[..., k] = mirrored[..., flip_permutation[k]]
        (`JointSubset.flip_permutation()`). `shift=True` moves the result one pixel to the right
        (column 0 kept), as HRNet does to compensate its u = x / stride grid; with this codec's grid the
        mirror is exact and shift=False is the consistent choice (measure both: CONVENTIONS.md).
        """
        heatmaps = tf.convert_to_tensor(heatmaps)
        perm = [int(p) for p in flip_permutation]
        channels = heatmaps.shape[-1]
        if channels is not None and sorted(perm) != list(range(channels)):
            raise ValueError(f"flip_back: flip_permutation {perm} is not a permutation of the "
                             f"{channels} heatmap channels")
        mirrored = tf.gather(tf.reverse(heatmaps, axis=[2]), perm, axis=3)
        if shift:
            mirrored = tf.concat([mirrored[:, :, :1], mirrored[:, :, :-1]], axis=2)
        return mirrored

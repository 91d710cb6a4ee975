"""Synthetic training batches for the step benchmarks (no flags: imported by several bench scripts)."""

from __future__ import annotations

import numpy as np


def synthetic_batch(batch_size: int, input_size: int, num_joints: int, seed: int):
    """One batch as the input pipeline yields it: uint8 images, joints in input pixels, all weights 1."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(batch_size, input_size, input_size, 3), dtype=np.uint8)
    joints = rng.uniform(0, input_size - 1, size=(batch_size, num_joints, 2)).astype(np.float32)
    weights = np.ones((batch_size, num_joints), np.float32)
    return images, {"joints": joints, "weights": weights}

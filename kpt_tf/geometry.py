"""Person-crop geometry: the one place that turns (centre, scale) into affine transforms.

Conventions (../shared/CONVENTIONS.md): coordinates are 0-based pixels with pixel centres at integers.
A person box is a square of side 200 * scale centred on `center`; MPII's rough `objpos`/`scale` are first
adjusted (centre moved down by 15 * scale, scale enlarged by 1.25), as every reference code base does.
A crop of `out_size` pixels covering `margin` person boxes maps the box centre to pixel (out_size-1)/2.
"""

from __future__ import annotations

import numpy as np

PERSON_BOX_PIXELS = 200.0
# The adjustment every reference code base applies to MPII's rough objpos/scale.
CENTER_SHIFT_PER_SCALE = 15.0
SCALE_ENLARGEMENT = 1.25


def adjust_person_box(objpos, scale):
    """MPII's rough (objpos, scale) -> the crop's (center, scale): c_y += 15 s, then s *= 1.25."""
    center = np.asarray(objpos, np.float64).copy()
    center[1] += CENTER_SHIFT_PER_SCALE * scale
    return center, float(scale) * SCALE_ENLARGEMENT


def crop_affine(center, scale, out_size: int, margin: float = 1.0, rotation_deg: float = 0.0,
                flip: bool = False) -> np.ndarray:
    """2x3 affine mapping image pixels to crop pixels (rotation counter-clockwise in the image)."""
    side = PERSON_BOX_PIXELS * float(scale) * float(margin)
    k = out_size / side
    theta = np.deg2rad(rotation_deg)
    cos, sin = np.cos(theta), np.sin(theta)
    # y points down in images: a counter-clockwise visual rotation is [[cos, sin], [-sin, cos]].
    rot = np.array([[cos, sin], [-sin, cos]]) * k
    if flip:
        rot = np.array([[-1.0, 0.0], [0.0, 1.0]]) @ rot
    half = (out_size - 1) / 2.0
    c = np.asarray(center, np.float64)
    t = np.array([half, half]) - rot @ c
    return np.concatenate([rot, t[:, None]], axis=1)


def invert_affine(m) -> np.ndarray:
    """Inverse of a 2x3 affine transform."""
    m = np.asarray(m, np.float64).reshape(2, 3)
    a_inv = np.linalg.inv(m[:, :2])
    return np.concatenate([a_inv, (-a_inv @ m[:, 2])[:, None]], axis=1)


def compose_affine(outer, inner) -> np.ndarray:
    """outer o inner, both 2x3."""
    o = np.vstack([np.asarray(outer, np.float64).reshape(2, 3), [0, 0, 1]])
    i = np.vstack([np.asarray(inner, np.float64).reshape(2, 3), [0, 0, 1]])
    return (o @ i)[:2]


def apply_affine_batch(affines, points) -> np.ndarray:
    """Per-item 2x3 affines [N,2,3] applied to points [N,J,2]."""
    affines = np.asarray(affines, np.float64)
    return np.einsum("nij,nkj->nki", affines[:, :, :2], np.asarray(points, np.float64)) + affines[:, None, :, 2]


def apply_affine(m, points) -> np.ndarray:
    """Apply a 2x3 affine to points [..., 2]."""
    m = np.asarray(m, np.float64).reshape(2, 3)
    p = np.asarray(points, np.float64)
    return p @ m[:, :2].T + m[:, 2]

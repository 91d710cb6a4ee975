"""Person-crop geometry: the one place that turns (centre, scale) into affine transforms, for numpy and TF.

Conventions (../shared/CONVENTIONS.md): coordinates are 0-based pixels with pixel centres at integers.
A person box is a square of side 200 * scale centred on `center`; MPII's rough `objpos`/`scale` are first
adjusted (centre moved down by 15 * scale, scale enlarged by 1.25), as every reference code base does.
A crop of `out_size` pixels covering `margin` person boxes maps the box centre to pixel (out_size-1)/2.

Every function is written once against a small array namespace and takes `backend="numpy"` (float64; the
converter, evaluation and tests: this module imports no TensorFlow at load time, so the converter's worker
processes stay TF-free) or `backend="tf"` (float32 tensors, usable inside tf.data maps, XLA functions and the
serving graph). Arguments broadcast: scalars for one crop, [N] vectors (and [N, 2] centres) for a batch;
affines are [..., 2, 3].
"""

from __future__ import annotations

import functools
import math
import types

import numpy as np

PERSON_BOX_PIXELS = 200.0
# Person box (x1, y1, x2, y2) -> crop: a square of 1.25 x the box's longer side (HRNet/mmpose's box padding).
BOX_PADDING = 1.25
# A person box may be at most this many times its image's longer side (a person partly outside the frame); beyond
# it a box is a mistake (a finite 1e30 overflowed the crop transform into NaN keypoints), refused by its users.
MAX_BOX_TO_IMAGE = 4.0
# The adjustment every reference code base applies to MPII's rough objpos/scale.
CENTER_SHIFT_PER_SCALE = 15.0
SCALE_ENLARGEMENT = 1.25

_NUMPY = types.SimpleNamespace(
    asarray=lambda x: np.asarray(x, np.float64), stack=np.stack, concat=np.concatenate, cos=np.cos,
    sin=np.sin, einsum=np.einsum, zeros_like=np.zeros_like)


@functools.cache
def _tf_namespace():
    import tensorflow as tf

    return types.SimpleNamespace(
        asarray=lambda x: tf.cast(x, tf.float32), stack=tf.stack, concat=tf.concat, cos=tf.cos, sin=tf.sin,
        einsum=tf.einsum, zeros_like=tf.zeros_like)


def _ops(backend: str):
    if backend == "numpy":
        return _NUMPY
    if backend == "tf":
        return _tf_namespace()
    raise ValueError(f"geometry: backend must be 'numpy' or 'tf', not {backend!r}")


def adjust_person_box(objpos, scale, backend: str = "numpy"):
    """MPII's rough (objpos [..., 2], scale [...]) -> the crop's (center, scale): c_y += 15 s, then s *= 1.25."""
    xp = _ops(backend)
    objpos, scale = xp.asarray(objpos), xp.asarray(scale)
    center = xp.stack([objpos[..., 0], objpos[..., 1] + CENTER_SHIFT_PER_SCALE * scale], -1)
    return center, scale * SCALE_ENLARGEMENT


def box_center_scale(boxes, padding=BOX_PADDING, backend: str = "numpy"):
    """Person boxes [..., 4] (x1, y1, x2, y2) -> (center [..., 2], scale [...]) of the square crop of `padding`
    x the box's longer side around the box centre."""
    xp = _ops(backend)
    boxes = xp.asarray(boxes)
    w, h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    center = xp.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], -1)
    longer = (w + h + abs(w - h)) / 2       # max(w, h) in either backend
    return center, padding * longer / PERSON_BOX_PIXELS


def rotation_terms(rotation_deg, backend: str = "numpy"):
    """(cos, sin) of rotations in degrees. A batched caller that must give each crop the bits of its own call
    computes these per crop and passes them as `crop_affine(..., terms=)`: TF's Cos and Sin over a vector of 32
    differ from the same ops on one value by an ulp (measured; BUILD_NOTES, input pipeline)."""
    xp = _ops(backend)
    theta = xp.asarray(rotation_deg) * (math.pi / 180.0)
    return xp.cos(theta), xp.sin(theta)


def crop_affine(center, scale, out_size: int, margin=1.0, rotation_deg=None, flip=False,
                backend: str = "numpy", terms=None):
    """[..., 2, 3] affine mapping image pixels to crop pixels (rotation counter-clockwise in the image).

    The crop of `out_size` pixels covers `margin` person boxes of side 200 * `scale` around `center`;
    `flip` mirrors it horizontally about its centre. The rotation: `rotation_deg` (None: 0), or `terms`, its
    (cos, sin) from `rotation_terms`.
    """
    xp = _ops(backend)
    center = xp.asarray(center)
    k = float(out_size) / (PERSON_BOX_PIXELS * xp.asarray(scale) * xp.asarray(margin))
    # y points down in images: a counter-clockwise visual rotation is [[cos, sin], [-sin, cos]];
    # the mirror negates the first row.
    mirror = 1.0 - 2.0 * xp.asarray(flip)
    if terms is not None and rotation_deg is not None:
        raise ValueError("crop_affine: give the rotation as rotation_deg or as terms, not both")
    cos, sin = terms if terms is not None else rotation_terms(0.0 if rotation_deg is None else rotation_deg, backend)
    cos, sin = cos * k, sin * k
    a, b, c, d = mirror * cos, mirror * sin, -sin, cos
    half = (float(out_size) - 1.0) / 2.0
    cx, cy = center[..., 0], center[..., 1]
    row0 = xp.stack([a, b, half - (a * cx + b * cy)], -1)
    row1 = xp.stack([c, d, half - (c * cx + d * cy)], -1)
    return xp.stack([row0, row1], -2)


def crop_to_input_affine(crop_size, margin, input_size: int, rotation_deg=None, scale=1.0, flip=False,
                         backend: str = "numpy", terms=None):
    """Stored-crop pixels -> model-input pixels: the input covers `scale` person boxes around the crop centre
    (a stored crop of `crop_size` px spans `margin` boxes), rotated and mirrored as `crop_affine`."""
    xp = _ops(backend)
    crop_size = xp.asarray(crop_size)
    centre = (crop_size - 1.0) / 2.0
    box_scale = crop_size * xp.asarray(scale) / (xp.asarray(margin) * PERSON_BOX_PIXELS)
    return crop_affine(xp.stack([centre, centre], -1), box_scale, input_size, 1.0, rotation_deg, flip, backend,
                       terms)


def invert_affine(m, backend: str = "numpy"):
    """Inverse of [..., 2, 3] affines (closed form)."""
    xp = _ops(backend)
    m = xp.asarray(m)
    a, b, tx = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    c, d, ty = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    row0 = xp.stack([ia, ib, -(ia * tx + ib * ty)], -1)
    row1 = xp.stack([ic, id_, -(ic * tx + id_ * ty)], -1)
    return xp.stack([row0, row1], -2)


def compose_affine(outer, inner, backend: str = "numpy"):
    """outer o inner for [..., 2, 3] affines."""
    xp = _ops(backend)
    outer, inner = xp.asarray(outer), xp.asarray(inner)
    linear = xp.einsum("...ij,...jk->...ik", outer[..., :2], inner[..., :2])
    translation = xp.einsum("...ij,...j->...i", outer[..., :2], inner[..., 2]) + outer[..., 2]
    return xp.concat([linear, translation[..., None]], -1)


def apply_affine(m, points, backend: str = "numpy"):
    """One 2x3 affine applied to points [..., 2]."""
    xp = _ops(backend)
    m, points = xp.asarray(m), xp.asarray(points)
    return xp.einsum("ij,...j->...i", m[:, :2], points) + m[:, 2]


def apply_affine_batch(affines, points, backend: str = "numpy"):
    """Per-item affines [..., 2, 3] applied to their items' points [..., J, 2] ([N, 2, 3] and [N, J, 2]; or one
    affine and its points: the same numbers, bit for bit, as the item of a batch)."""
    xp = _ops(backend)
    affines, points = xp.asarray(affines), xp.asarray(points)
    return xp.einsum("...ij,...kj->...ki", affines[..., :2], points) + affines[..., None, :, 2]


def to_projective_rows(affine, backend: str = "numpy"):
    """[N, 2, 3] affines -> [N, 8] rows of ImageProjectiveTransformV3 (output pixel -> input pixel)."""
    xp = _ops(backend)
    affine = xp.asarray(affine)
    flat = xp.concat([affine[..., 0, :], affine[..., 1, :]], -1)
    return xp.concat([flat, xp.zeros_like(flat[..., :2])], -1)

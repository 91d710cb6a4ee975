"""Crop geometry (kpt_tf/geometry.py): one implementation, the same numbers from numpy and from TF."""

from __future__ import annotations

import numpy as np
import pytest

from kpt_tf import geometry

CASES = [(0.0, 1.0, False), (23.0, 0.8, True), (-30.0, 1.25, False)]


@pytest.mark.parametrize("rotation,scale,flip", CASES)
def test_tf_backend_equals_numpy_backend(rotation, scale, flip):
    numpy_m = geometry.crop_to_input_affine(75, 1.5, 64, rotation, scale, flip)
    tf_m = geometry.crop_to_input_affine(75, 1.5, 64, rotation, scale, flip, backend="tf").numpy()
    np.testing.assert_allclose(tf_m, numpy_m, atol=1e-4)
    np.testing.assert_allclose(geometry.invert_affine(tf_m, backend="tf").numpy(), geometry.invert_affine(numpy_m),
                               atol=1e-4)
    points = np.array([[3.0, 4.0], [70.0, 12.5]])
    np.testing.assert_allclose(geometry.apply_affine(numpy_m, points, backend="tf").numpy(),
                               geometry.apply_affine(numpy_m, points), atol=1e-3)


def test_crop_to_input_is_crop_affine_about_the_crop_centre():
    for rotation, scale, flip in CASES:
        expected = geometry.crop_affine([(75 - 1) / 2] * 2, 75 * scale / (1.5 * 200), 64, rotation_deg=rotation,
                                        flip=flip)
        np.testing.assert_allclose(geometry.crop_to_input_affine(75, 1.5, 64, rotation, scale, flip), expected)


def test_crop_affine_maps_the_box_centre_to_the_crop_centre_and_inverts():
    m = geometry.crop_affine([120.0, 80.0], 1.3, 256, margin=1.25, rotation_deg=17.0, flip=True)
    np.testing.assert_allclose(geometry.apply_affine(m, [120.0, 80.0]), [127.5, 127.5])
    points = np.random.default_rng(0).uniform(0, 300, (5, 2))
    back = geometry.apply_affine(geometry.invert_affine(m), geometry.apply_affine(m, points))
    np.testing.assert_allclose(back, points, atol=1e-9)
    identity = geometry.compose_affine(geometry.invert_affine(m), m)
    np.testing.assert_allclose(identity, [[1, 0, 0], [0, 1, 0]], atol=1e-12)


def test_batched_forms_equal_the_per_item_forms():
    centers = np.array([[10.0, 20.0], [200.0, 50.0], [64.0, 64.0]])
    scales = np.array([0.5, 1.0, 2.0])
    batch = geometry.crop_affine(centers, scales, 128)
    points = np.random.default_rng(1).uniform(0, 200, (3, 4, 2))
    moved = geometry.apply_affine_batch(batch, points)
    for i in range(3):
        np.testing.assert_allclose(batch[i], geometry.crop_affine(centers[i], scales[i], 128))
        np.testing.assert_allclose(moved[i], geometry.apply_affine(batch[i], points[i]))
    tf_moved = geometry.apply_affine_batch(batch, points, backend="tf").numpy()
    np.testing.assert_allclose(tf_moved, moved, rtol=1e-5, atol=1e-3)


def test_tf_batched_placement_gives_each_crop_the_bits_of_its_own_call():
    """What the training stream's per-batch placement rests on (kpt_tf.data.records): with each crop's (cos, sin)
    computed on its own, the batched affines and joints equal the per-crop ones bit for bit in float32; the cosine
    itself would not (TF's vectorised Cos differs by an ulp over 32 values)."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    n = 32
    crop_size, margin = rng.integers(100, 400, n).astype(np.float32), rng.uniform(1.1, 1.5, n).astype(np.float32)
    rotation, scale = rng.uniform(-30, 30, n).astype(np.float32), rng.uniform(0.75, 1.25, n).astype(np.float32)
    flip, points = rng.uniform(size=n) < 0.5, rng.uniform(0, 400, (n, 16, 2)).astype(np.float32)
    terms = [geometry.rotation_terms(tf.constant(r), backend="tf") for r in rotation]
    batched = geometry.crop_to_input_affine(crop_size, margin, 256, scale=scale, flip=flip, backend="tf",
                                            terms=(tf.stack([c for c, _ in terms]), tf.stack([s for _, s in terms])))
    moved = geometry.apply_affine_batch(batched, points, backend="tf").numpy()
    for i in range(n):
        alone = geometry.crop_to_input_affine(crop_size[i], margin[i], 256, rotation[i], scale[i], flip[i],
                                              backend="tf")
        np.testing.assert_array_equal(batched[i].numpy(), alone.numpy())
        np.testing.assert_array_equal(moved[i], geometry.apply_affine(alone, points[i], backend="tf").numpy())
    with pytest.raises(ValueError, match="rotation_deg or as terms, not both"):
        geometry.crop_affine([0.0, 0.0], 1.0, 64, rotation_deg=10.0, terms=terms[0])


def test_person_box_adjustment_and_projective_rows():
    center, scale = geometry.adjust_person_box([100.0, 50.0], 2.0)
    np.testing.assert_allclose(center, [100.0, 80.0])
    assert scale == pytest.approx(2.5)
    tf_center, tf_scale = geometry.adjust_person_box(np.array([[100.0, 50.0]]), np.array([2.0]), backend="tf")
    np.testing.assert_allclose(tf_center.numpy(), [[100.0, 80.0]])
    rows = geometry.to_projective_rows(np.array([[[1, 2, 3], [4, 5, 6]]], np.float64))
    np.testing.assert_array_equal(rows, [[1, 2, 3, 4, 5, 6, 0, 0]])

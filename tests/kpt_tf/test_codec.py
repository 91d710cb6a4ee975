"""HeatmapCodec: encode/decode round trip, weight rules, flip_back, coordinate maps, XLA."""

import numpy as np
import pytest
import tensorflow as tf

from kpt_tf.codec import HeatmapCodec, heatmap_to_input, input_to_heatmap
from kpt_tf.joints import ALL, JointSubset


def _random_joints(rng, batch, joints, low=0.0, high=255.0):
    return rng.uniform(low, high, size=(batch, joints, 2)).astype(np.float32)


def test_coordinate_maps_put_pixel_centres_on_pixel_centres():
    # Heatmap pixel i covers input pixels 4i..4i+3: its centre is 4i + 1.5.
    centres = heatmap_to_input(np.array([0.0, 1.0, 63.0]), 256, 64).numpy()
    np.testing.assert_allclose(centres, [1.5, 5.5, 253.5])
    x = np.linspace(-10, 265, 23)
    np.testing.assert_allclose(heatmap_to_input(input_to_heatmap(x, 256, 64), 256, 64).numpy(), x, atol=1e-4)
    # Mirroring the input (x -> 255 - x) is mirroring the heatmap (u -> 63 - u): flip needs no shift.
    np.testing.assert_allclose(input_to_heatmap(255.0 - x, 256, 64).numpy(),
                               63.0 - input_to_heatmap(x, 256, 64).numpy(), atol=1e-4)


@pytest.mark.parametrize("sigma,subpixel,tolerance", [(1.0, True, 0.25 + 1e-4), (2.0, True, 0.25 + 1e-4),
                                                      (1.0, False, 0.5 + 1e-4)])
def test_round_trip_recovers_sub_pixel_joints(sigma, subpixel, tolerance):
    # Anywhere on the input the error is < 0.5 heatmap px; sub-pixel targets give <= 0.25 away from the
    # border (on the outermost pixels there is no neighbour to step towards).
    codec = HeatmapCodec(input_size=256, heatmap_size=64, sigma=sigma, subpixel=subpixel)
    rng = np.random.default_rng(1)
    joints = _random_joints(rng, 8, 16)
    heatmaps, weights = codec.encode(joints, np.ones([8, 16], np.float32))
    assert heatmaps.shape == (8, 64, 64, 16) and heatmaps.dtype == tf.float32
    np.testing.assert_array_equal(weights.numpy(), 1.0)
    decoded, scores = codec.decode(heatmaps)
    error_heatmap_px = np.abs(codec.to_heatmap(decoded).numpy() - codec.to_heatmap(joints).numpy())
    assert error_heatmap_px.max() < 0.5
    interior = np.all((codec.to_heatmap(joints).numpy() > 0.5) & (codec.to_heatmap(joints).numpy() < 62.5), -1)
    assert interior.sum() > 100
    assert error_heatmap_px[interior].max() < tolerance
    assert np.all(scores.numpy() > 0.6) and np.all(scores.numpy() <= 1.0 + 1e-6)


def test_grid_aligned_joint_peaks_at_one_and_rounded_targets_peak_at_one():
    codec = HeatmapCodec(sigma=1.0)
    on_grid = codec.to_input(np.array([[[10.0, 20.0]]], np.float32))
    heatmaps, _ = codec.encode(on_grid, np.ones([1, 1]))
    assert heatmaps.numpy()[0, 20, 10, 0] == pytest.approx(1.0)
    assert heatmaps.numpy()[0, 20, 11, 0] == pytest.approx(np.exp(-0.5), rel=1e-5)
    rounded = HeatmapCodec(sigma=1.0, subpixel=False)
    heatmaps, _ = rounded.encode(np.array([[[100.3, 50.9]]], np.float32), np.ones([1, 1]))
    assert float(tf.reduce_max(heatmaps)) == pytest.approx(1.0)


def test_xla_compiled_encode_and_decode_match_eager():
    codec = HeatmapCodec(sigma=2.0)
    rng = np.random.default_rng(2)
    joints = _random_joints(rng, 4, 9, low=-30.0, high=285.0)
    weights = (rng.uniform(size=(4, 9)) > 0.2).astype(np.float32)
    eager_heatmaps, eager_weights = codec.encode(joints, weights)
    compiled_heatmaps, compiled_weights = tf.function(codec.encode, jit_compile=True)(
        tf.constant(joints), tf.constant(weights))
    np.testing.assert_allclose(compiled_heatmaps.numpy(), eager_heatmaps.numpy(), atol=1e-6)
    np.testing.assert_array_equal(compiled_weights.numpy(), eager_weights.numpy())
    compiled_joints, _ = tf.function(codec.decode, jit_compile=True)(compiled_heatmaps)
    np.testing.assert_allclose(compiled_joints.numpy(), codec.decode(eager_heatmaps)[0].numpy(), atol=1e-4)


def test_zero_weight_gives_zero_heatmap_and_weight():
    codec = HeatmapCodec()
    joints = np.array([[[100.0, 100.0], [50.0, 60.0]]], np.float32)
    heatmaps, weights = codec.encode(joints, np.array([[1.0, 0.0]], np.float32))
    np.testing.assert_array_equal(weights.numpy(), [[1.0, 0.0]])
    assert float(tf.reduce_max(heatmaps[..., 1])) == 0.0
    assert float(tf.reduce_max(heatmaps[..., 0])) > 0.8


def test_joints_off_the_heatmap_get_weight_zero_by_the_three_sigma_rule():
    codec = HeatmapCodec(sigma=1.0)
    # x = -5 input px is heatmap u = -1.625: its 3-sigma window still reaches pixel 0, so it keeps weight 1.
    # x = -20 is u = -5.375: window entirely outside. y = 262 is v = 65.125 (window reaches row 63),
    # x = 270 is u = 67.125 (does not). NaN positions are dropped, never propagated.
    joints = np.array([[[-5.0, 100.0], [-20.0, 100.0], [100.0, 262.0], [270.0, 40.0], [np.nan, 3.0]]],
                      np.float32)
    heatmaps, weights = codec.encode(joints, np.ones([1, 5], np.float32))
    np.testing.assert_array_equal(weights.numpy(), [[1.0, 0.0, 1.0, 0.0, 0.0]])
    maxima = tf.reduce_max(heatmaps, axis=[1, 2]).numpy()[0]
    assert maxima[0] > 0 and maxima[2] > 0
    np.testing.assert_array_equal(maxima[[1, 3, 4]], 0.0)
    assert np.all(np.isfinite(heatmaps.numpy()))


def test_decode_steps_a_quarter_pixel_towards_the_higher_neighbour_per_axis():
    codec = HeatmapCodec()
    heatmaps = np.zeros([1, 64, 64, 2], np.float32)
    heatmaps[0, 20, 10, 0] = 1.0
    heatmaps[0, 20, 11, 0] = 0.5    # right neighbour higher: +0.25 in x
    heatmaps[0, 19, 10, 0] = 0.3    # upper neighbour higher: -0.25 in y
    heatmaps[0, 5, 0, 1] = 1.0      # maximum on the left border: no x step
    heatmaps[0, 6, 0, 1] = 0.2
    joints, scores = codec.decode(heatmaps)
    np.testing.assert_allclose(codec.to_heatmap(joints).numpy()[0], [[10.25, 19.75], [0.0, 5.25]], atol=1e-5)
    np.testing.assert_allclose(scores.numpy()[0], [1.0, 1.0])


def test_flip_back_twice_is_identity_and_undoes_a_mirrored_target():
    codec = HeatmapCodec(sigma=1.0)
    permutation = ALL.flip_permutation()
    rng = np.random.default_rng(3)
    heatmaps = rng.uniform(size=(2, 64, 64, 16)).astype(np.float32)
    twice = codec.flip_back(codec.flip_back(heatmaps, permutation), permutation)
    np.testing.assert_array_equal(twice.numpy(), heatmaps)

    # Targets of the mirrored image (x -> 255 - x, pairs swapped), flipped back = targets of the image.
    joints = _random_joints(rng, 2, 16, low=10, high=245)
    mirrored = np.stack([255.0 - joints[..., 0], joints[..., 1]], axis=-1)[:, list(permutation)]
    ones = np.ones([2, 16], np.float32)
    original_targets, _ = codec.encode(joints, ones)
    mirrored_targets, _ = codec.encode(mirrored, ones)
    restored = codec.flip_back(mirrored_targets, permutation)
    np.testing.assert_allclose(restored.numpy(), original_targets.numpy(), atol=1e-5)
    # HRNet's shift moves everything one column right.
    shifted = codec.flip_back(mirrored_targets, permutation, shift=True).numpy()
    np.testing.assert_array_equal(shifted[:, :, 1:], restored.numpy()[:, :, :-1])


def test_flip_back_uses_the_subset_permutation_and_rejects_bad_ones():
    codec = HeatmapCodec()
    arms = JointSubset.parse("arms")   # right wrist, elbow, shoulder, left shoulder, elbow, wrist
    heatmaps = np.zeros([1, 64, 64, 6], np.float32)
    heatmaps[0, 30, 5, 0] = 1.0        # right wrist near the left edge of the mirrored image
    restored = codec.flip_back(heatmaps, arms.flip_permutation()).numpy()
    assert restored[0, 30, 58, arms.position("left_wrist")] == 1.0
    with pytest.raises(ValueError, match="permutation"):
        codec.flip_back(heatmaps, [0, 1, 2])


def test_config_round_trip_and_validation():
    codec = HeatmapCodec(input_size=192, heatmap_size=48, sigma=2.0, subpixel=False)
    assert HeatmapCodec.from_config(codec.get_config()) == codec
    assert codec.stride == 4.0
    with pytest.raises(ValueError, match="sigma"):
        HeatmapCodec(sigma=0.0)
    with pytest.raises(ValueError, match="heatmaps"):
        HeatmapCodec().decode(np.zeros([1, 32, 32, 2], np.float32))

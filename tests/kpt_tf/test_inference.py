"""The one inference path (kpt_tf/inference.py) and the output contract (kpt_tf/models/outputs.py)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from kpt_tf.codec import HeatmapCodec
from kpt_tf.inference import final_heatmaps, flip_permutation_or_none, net_heatmaps_fn
from kpt_tf.joints import JointSubset
from kpt_tf.models import outputs
from kpt_tf.models.hourglass import build_hourglass


@pytest.mark.parametrize("stacks", [1, 2])
def test_final_heatmaps_are_the_last_stage_for_one_and_several_stacks(stacks):
    net = build_hourglass(stacks, 16, 16, depth=2, input_size=64)
    images = tf.random.uniform([2, 64, 64, 3], 0, 255, seed=1)
    raw = net(images, training=False)
    assert len(outputs.stage_outputs(raw)) == stacks
    got = final_heatmaps(net, images)
    assert got.shape == (2, 16, 16, 16)
    np.testing.assert_allclose(got.numpy(), outputs.stage_outputs(raw)[-1].numpy(), atol=1e-6)


def test_flip_test_averages_the_mirrored_pass_flipped_back():
    net = build_hourglass(1, 16, 16, depth=2, input_size=64)
    subset = JointSubset.parse("all")
    images = tf.random.uniform([1, 64, 64, 3], 0, 255, seed=2)
    permutation = flip_permutation_or_none(subset, True)
    plain = final_heatmaps(net, images).numpy()
    mirrored = final_heatmaps(net, tf.reverse(images, axis=[2])).numpy()
    expected = 0.5 * (plain + HeatmapCodec.flip_back(mirrored, permutation).numpy())
    np.testing.assert_allclose(net_heatmaps_fn(net, subset, flip_test=True)(images).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(net_heatmaps_fn(net, subset, flip_test=False)(images).numpy(), plain, atol=1e-6)


def test_flip_test_is_off_for_subsets_the_mirror_does_not_map_onto_themselves():
    assert flip_permutation_or_none(JointSubset.parse("left"), True) is None
    assert flip_permutation_or_none(JointSubset.parse("arms"), False) is None
    assert flip_permutation_or_none(JointSubset.parse("arms"), True) is not None

"""Batch norm folded into the convolution before it (kpt_tf.models.folding): the forward every prediction runs."""

from __future__ import annotations

import numpy as np
import pytest


def _with_trained_statistics(net, seed: int = 0):
    """Batch norms with moving statistics and affine parameters far from their initial 0/1, as after training:
    a fold that dropped or misplaced any of them would change the output."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            layer.beta.assign(rng.normal(0.0, 0.3, n))
            layer.moving_mean.assign(rng.normal(0.0, 0.3, n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
    return net


@pytest.mark.parametrize("stem", ["bearpaw", "scaled"])
def test_a_folded_hourglass_computes_what_the_network_computes(stem):
    import keras
    import tensorflow as tf

    from kpt_tf.models.folding import FoldedForward, foldable_pairs
    from kpt_tf.models.hourglass import build_hourglass

    keras.utils.set_random_seed(1)
    net = _with_trained_statistics(build_hourglass(2, 32, 16, depth=2, input_size=64, stem=stem))
    forward = FoldedForward(net)
    norms = [layer.name for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization)]
    # every residual's bn2 and bn3 (after its conv1 and conv2), the stem's bn and each stack's fc bn; a residual's
    # bn1 follows an addition or is shared with the skip, and stays
    expected = [n for n in norms if n.endswith(("_bn2", "_bn3", "_fc_bn")) or n == "stem_bn"]
    assert sorted(norm.name for _, norm in foldable_pairs(net)) == sorted(expected)
    assert forward.folded == len(expected) < len(norms)
    images = tf.constant(np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32))
    plain, folded = net(images, training=False), forward(images)
    assert len(plain) == len(folded) == 2
    for a, b in zip(plain, folded):
        scale = float(tf.reduce_max(tf.abs(a)))
        assert scale > 0.1
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-5 * scale)


def test_the_folded_graph_runs_fewer_batch_norms_and_a_network_without_a_pair_runs_as_it_is():
    import keras
    import tensorflow as tf

    from kpt_tf.models.folding import FoldedForward
    from kpt_tf.models.hourglass import build_hourglass

    net = build_hourglass(1, 16, 16, depth=1, input_size=64, stem="scaled")
    forward = FoldedForward(net)

    def batch_norms(fn):
        graph = tf.function(fn).get_concrete_function(tf.TensorSpec([1, 64, 64, 3], tf.float32)).graph
        return sum(op.type.startswith("FusedBatchNorm") for op in graph.get_operations())

    total = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in net.layers)
    assert batch_norms(lambda x: net(x, training=False)) == total
    assert batch_norms(forward) == total - forward.folded

    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.Add()([keras.layers.BatchNormalization()(inputs), inputs]))
    assert FoldedForward(plain).folded == 0
    x = tf.ones([1, 8, 8, 3])
    np.testing.assert_array_equal(FoldedForward(plain)(x).numpy(), plain(x, training=False).numpy())

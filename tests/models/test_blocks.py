"""Building blocks (kpt_tf/models/blocks.py): the fused batch norm equals Keras' own, in training and inference."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from kpt_tf.models.blocks import BN_EPSILON, BN_MOMENTUM, FusedBatchNorm


def test_fused_batch_norm_equals_keras_batch_norm_and_updates_the_same_statistics(tmp_path):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, (4, 6, 5, 8)), tf.float32)
    keras_bn = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="bn")
    fused = FusedBatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="bn")
    keras_bn.build(x.shape)
    fused.build(x.shape)
    gamma, beta = rng.uniform(0.5, 1.5, 8).astype(np.float32), rng.normal(0, 1, 8).astype(np.float32)
    for layer in (keras_bn, fused):
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y_keras, y_fused = keras_bn(x, training=True), fused(x, training=True)
        loss_keras, loss_fused = tf.reduce_sum(y_keras * x), tf.reduce_sum(y_fused * x)
    np.testing.assert_allclose(y_fused.numpy(), y_keras.numpy(), atol=2e-5)
    np.testing.assert_allclose(tape.gradient(loss_fused, x).numpy(), tape.gradient(loss_keras, x).numpy(), atol=1e-4)
    np.testing.assert_allclose(tape.gradient(loss_fused, fused.gamma).numpy(),
                               tape.gradient(loss_keras, keras_bn.gamma).numpy(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(fused.moving_mean.numpy(), keras_bn.moving_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance.numpy(), keras_bn.moving_variance.numpy(), rtol=1e-5)
    np.testing.assert_allclose(fused(x, training=False).numpy(), keras_bn(x, training=False).numpy(), atol=2e-5)
    # Saved and loaded under the same layer name and variables.
    model = keras.Sequential([keras.Input((6, 5, 8)), fused])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert [v.path for v in loaded.weights] == ["bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"]
    np.testing.assert_allclose(loaded(x).numpy(), fused(x, training=False).numpy(), atol=1e-6)

"""Building blocks (kpt_tf/models/blocks.py): the fused batch norm equals Keras' own, in training and inference."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kpt_tf.models.blocks import BN_EPSILON, BN_MOMENTUM, FusedBatchNorm, PointwiseConv2D, conv


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


SYNC_BN_SCRIPT = r"""
import json
from kpt_tf.training.distribute import make_strategy
host = make_strategy(2)     # kpt_tf.train's strategy on 2 CPUs; splits the CPU before any TF op runs
import numpy as np, tensorflow as tf, keras
from kpt_tf.models.blocks import BN_EPSILON, BN_MOMENTUM, FusedBatchNorm

rng = np.random.default_rng(0)
x = rng.normal(2.0, 3.0, (8, 6, 5, 4)).astype(np.float32)
gamma, beta = rng.uniform(0.5, 1.5, 4).astype(np.float32), rng.normal(0, 1, 4).astype(np.float32)
weight = rng.normal(0, 1, x.shape).astype(np.float32)     # a loss that is not symmetric in the batch

def make(cls, **kw):
    layer = cls(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name="bn", **kw)
    layer.build(x.shape)
    layer.gamma.assign(gamma); layer.beta.assign(beta)
    return layer

def one_device():
    layer = make(keras.layers.BatchNormalization)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt, training=True)
        loss = tf.reduce_sum(y * weight)
    gx, gg = tape.gradient(loss, [xt, layer.gamma])
    return y.numpy(), gx.numpy(), gg.numpy(), layer.moving_mean.numpy(), layer.moving_variance.numpy()

def two_replicas(cls, strategy):
    with strategy.scope():
        layer = make(cls, synchronized=True)
    def halves(values):
        split = tf.split(tf.constant(values), 2)
        return strategy.experimental_distribute_values_from_function(lambda c: split[c.replica_id_in_sync_group])
    xs, ws = halves(x), halves(weight)
    @tf.function
    def step(xr, wr):
        def replica(xi, wi):
            with tf.GradientTape() as tape:
                tape.watch(xi)
                y = layer(xi, training=True)
                loss = tf.reduce_sum(y * wi)
            gx, gg = tape.gradient(loss, [xi, layer.gamma])
            return y, gx, tf.distribute.get_replica_context().all_reduce("sum", gg)
        return strategy.run(replica, (xr, wr))
    y, gx, gg = step(xs, ws)
    cat = lambda v: np.concatenate([t.numpy() for t in strategy.experimental_local_results(v)])
    return (cat(y), cat(gx), strategy.experimental_local_results(gg)[0].numpy(), layer.moving_mean.numpy(),
            layer.moving_variance.numpy())

ref = one_device()
out = {}
# The training's strategy on CPUs (all-reduce through the host, under merge_call), then collective ops (as
# MultiWorkerMirroredStrategy); one strategy per kind: a second collective strategy in the process restarts
# the collective instance keys.
strategies = {"host": host, "collective": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
for kind, strategy in strategies.items():
    for name, cls in (("keras", keras.layers.BatchNormalization), ("ours", FusedBatchNorm)):
        got = two_replicas(cls, strategy)
        out[f"{name} {kind}"] = [float(np.max(np.abs(a - b))) for a, b in zip(got, ref)]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_synchronized_batch_norm_on_two_replicas_equals_one_batch_norm_over_both_halves():
    """Two CPU replicas, each with half the batch: outputs, input and gamma gradients and moving statistics
    of our synchronized path equal one BN over the whole batch, as Keras' synchronized BN does."""
    import json
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run([sys.executable, "-c", SYNC_BN_SCRIPT], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    errors = json.loads(done.stdout.strip().splitlines()[-1])
    # output, input gradient, gamma gradient, moving mean, moving variance
    tolerances = [1e-4, 1e-4, 1e-3, 1e-5, 1e-4]
    assert len(errors) == 4, errors
    for name, error in errors.items():
        assert all(e <= t for e, t in zip(error, tolerances)), (name, errors)


def test_pointwise_conv_equals_keras_conv_in_outputs_gradients_saving_and_mixed_precision(tmp_path):
    assert isinstance(conv(8, 1, 4, "p"), PointwiseConv2D)
    assert type(conv(8, 3, 4, "c")) is keras.layers.Conv2D
    assert type(conv(8, 1, 4, "s", strides=2)) is keras.layers.Conv2D
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((3, 5, 7, 4)).astype(np.float32))
    ours, reference = PointwiseConv2D(6, 1, name="p"), keras.layers.Conv2D(6, 1, name="p")
    ours.build(x.shape)
    reference.build(x.shape)
    reference.set_weights(ours.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        y, y_ref = ours(x), reference(x)
        loss, loss_ref = tf.reduce_sum(y * y), tf.reduce_sum(y_ref * y_ref)
    np.testing.assert_allclose(y.numpy(), y_ref.numpy(), atol=1e-5)
    assert y.shape == y_ref.shape
    for g, g_ref in zip(tape.gradient(loss, [x, *ours.trainable_variables]),
                        tape.gradient(loss_ref, [x, *reference.trainable_variables])):
        np.testing.assert_allclose(g.numpy(), g_ref.numpy(), rtol=1e-4, atol=1e-4)

    inputs = keras.Input((5, 7, 4))
    model = keras.Model(inputs, PointwiseConv2D(6, 1, name="p")(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.get_layer("p")) is PointwiseConv2D
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)

    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        half = PointwiseConv2D(6, 1)
        out = half(x)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == tf.float16 and half.kernel.dtype == "float32"

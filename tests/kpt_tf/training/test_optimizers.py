"""kpt_tf.training.optimizers: Keras' optimizers with TensorFlow's fused update kernels, same numbers, same state."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from kpt_tf.training import optimizers

# name: (arguments, Keras' class, ours, the kernel ours must run, relative tolerance). Adam's: the kernel forms
# 1 - beta_2 in float32 (1 - 0.999f = 0.00099998713), Keras in Python floats (0.001): v differs by 1.3e-5 relative,
# the update by half of that.
CASES = {
    "rmsprop": (dict(rho=0.99, epsilon=1e-8), keras.optimizers.RMSprop, optimizers.RMSprop, "ResourceApplyRMSProp",
                2e-6),
    "rmsprop_momentum": (dict(momentum=0.5), keras.optimizers.RMSprop, optimizers.RMSprop, "ResourceApplyRMSProp",
                         2e-6),
    "adam": ({}, keras.optimizers.Adam, optimizers.Adam, "ResourceApplyAdam", 1e-5),
    "sgd": (dict(momentum=0.9), keras.optimizers.SGD, optimizers.SGD, "ResourceApplyKerasMomentum", 2e-6),
}


def run_steps(optimizer_class, kwargs, steps=4):
    """A kernel and a bias (gradients from 1e-9 to 10, both signs) updated `steps` times inside one tf.function under
    a one-device MirroredStrategy (the distributed update path training takes)."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    rng = np.random.default_rng(0)
    with strategy.scope():
        kernel = keras.Variable(rng.normal(size=(3, 11)).astype("float32"), name="kernel")
        bias = keras.Variable(np.zeros(11, "float32"), name="bias")
        optimizer = optimizer_class(1e-3, **kwargs)
        optimizer.build([kernel, bias])
    scale = np.logspace(-9, 1, 11).astype("float32") * np.array([1, -1] * 5 + [1], "float32")

    @tf.function
    def step(i):
        def replica():
            grads = [tf.constant(scale) * tf.cast(i + 1, tf.float32) * tf.ones((3, 1)),
                     tf.constant(scale[::-1].copy()) * tf.cast(i + 1, tf.float32)]
            optimizer.apply_gradients(zip(grads, [kernel, bias]))
        strategy.run(replica)

    for i in range(steps):
        step(tf.constant(i))
    ops = {op.type for op in step.get_concrete_function(tf.constant(0)).graph.get_operations()}
    for f in step.get_concrete_function(tf.constant(0)).graph._functions.values():
        ops |= {node.op for node in f.cached_definition.node_def}
    return [kernel.numpy(), bias.numpy()], optimizer, ops


@pytest.mark.parametrize("case", list(CASES))
def test_the_fused_update_gives_keras_numbers_and_keeps_keras_state(case):
    kwargs, keras_class, fused_class, kernel_op, rtol = CASES[case]
    expected, keras_optimizer, keras_ops = run_steps(keras_class, kwargs)
    got, fused_optimizer, fused_ops = run_steps(fused_class, kwargs)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=rtol, atol=1e-9)
    assert kernel_op in fused_ops and kernel_op not in keras_ops
    # A backup (`.weights.h5`) holds the optimizer's variables: the same ones as Keras' optimizer's.
    assert ([(v.name, tuple(v.shape)) for v in fused_optimizer.variables]
            == [(v.name, tuple(v.shape)) for v in keras_optimizer.variables])

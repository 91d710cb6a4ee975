"""The optimizers a run's `train.optimizer` names: Keras' RMSprop, Adam and SGD with momentum, each applying its
update with TensorFlow's fused training kernel (`ResourceApplyRMSProp`, `ResourceApplyAdam`,
`ResourceApplyKerasMomentum`: one op per variable, as tf.keras 2 did) instead of Keras 3's composition of about ten
element-wise ops per variable.

Why: a training step's graph holds one update per trainable variable (542 on a depth-1 hourglass, more on deeper
ones), so the composed updates are most of the ops a step is traced from and dispatches. Measured on a depth-1,
64-px hourglass (2 vCPUs, Intel Xeon, 2026-12-07; BUILD_NOTES "Fused optimizer updates"): tracing the training step
3.3 -> 2.0 s with RMSprop and 4.6 -> 2.6 s with Adam, paid by every run at its start. The kernels compute Keras'
formulas (the same epsilon placement: inside the square root for RMSprop, outside for Adam); the test checks every
optimizer against Keras' own to float rounding.

State: the same slot variables as Keras' (a `.weights.h5` backup holds the same arrays), except RMSprop without
momentum, whose kernel still writes a momentum buffer: it gets one scratch buffer per variable, rewritten by every
step (momentum 0 keeps nothing of the last), created with the slots and never saved.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras.src import backend as keras_backend


def _tf_variable(variable):
    """The tf.Variable behind a Keras variable (the per-device one inside a strategy's update)."""
    return variable.value if isinstance(variable, keras_backend.Variable) else variable


class _FusedUpdate:
    """What the three share. Each falls back to Keras' own update for what its kernel does not cover (sparse
    gradients; centred RMSprop, AMSGrad, Nesterov, SGD without momentum)."""

    def _fused(self, gradient) -> bool:
        return not isinstance(gradient, tf.IndexedSlices)

    def _slot_handle(self, slots, variable):
        return _tf_variable(slots[self._get_variable_index(variable)]).handle


class RMSprop(_FusedUpdate, keras.optimizers.RMSprop):
    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        scratch = None
        if self.momentum == 0 and not self.centered:
            with self._distribution_strategy.scope():
                scratch = [self._scratch_like(_tf_variable(v), i) for i, v in enumerate(var_list)]
        # Set past Keras' attribute tracking: not in `self.variables`, never saved, so a backup holds what Keras'
        # RMSprop holds.
        self.__dict__["_scratch"] = scratch

    def _scratch_like(self, variable, index: int):
        with self._distribution_strategy.extended.colocate_vars_with(variable):
            return tf.Variable(tf.zeros(variable.shape, variable.dtype), trainable=False,
                               name=f"rmsprop_scratch_{index}")

    def update_step(self, gradient, variable, learning_rate):
        if not self._fused(gradient) or self.centered:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        momentum_slots = self._momentums if self.momentum > 0 else self._scratch
        return tf.raw_ops.ResourceApplyRMSProp(
            var=_tf_variable(variable).handle, ms=self._slot_handle(self._velocities, variable),
            mom=self._slot_handle(momentum_slots, variable), lr=tf.cast(learning_rate, dtype),
            rho=tf.cast(self.rho, dtype), momentum=tf.cast(self.momentum, dtype), epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype))


class Adam(_FusedUpdate, keras.optimizers.Adam):
    def update_step(self, gradient, variable, learning_rate):
        if not self._fused(gradient) or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        return tf.raw_ops.ResourceApplyAdam(
            var=_tf_variable(variable).handle, m=self._slot_handle(self._momentums, variable),
            v=self._slot_handle(self._velocities, variable), beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


class SGD(_FusedUpdate, keras.optimizers.SGD):
    def update_step(self, gradient, variable, learning_rate):
        if not self._fused(gradient) or self.momentum == 0 or self.nesterov:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        return tf.raw_ops.ResourceApplyKerasMomentum(
            var=_tf_variable(variable).handle, accum=self._slot_handle(self.momentums, variable),
            lr=tf.cast(learning_rate, dtype), grad=tf.cast(gradient, dtype), momentum=tf.cast(self.momentum, dtype))

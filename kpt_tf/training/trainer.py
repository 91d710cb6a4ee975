"""`PoseTrainer`: wraps the functional pose network for `model.fit`.

The network itself stays a plain functional `keras.Model` (saved, exported and transferred as is); the
trainer adds what training needs: heatmap targets rendered inside the compiled step from the small
(joints, weights) batch, the MSE loss with target weights summed over stacks, per-stack loss metrics,
and the XLA path.

XLA under MirroredStrategy: `compile(jit_compile=True)` + `fit` fails upstream (keras#19005: "Trying to
access resource ... located in device CPU:1 from device CPU:0"). What works, and what this does: the
per-replica forward and backward pass run inside an inner `tf.function(jit_compile=True)`, while the
cross-replica gradient all-reduce and the optimizer update stay outside XLA, still driven by `fit`.

BatchNormalization under several replicas: without XLA the network is built with synchronized BN (batch
moments all-reduced in the forward pass). Inside the XLA per-replica function no cross-replica
communication is possible (TF refuses a synchronization point inside a nested tf.function), so there the
network uses per-replica batch moments (as PyTorch DDP does without SyncBatchNorm), and after every step
the moving mean/variance are averaged across replicas outside XLA, so every replica holds identical
statistics and the exported model is the trained one. EMA is linear: the averaged moving mean equals the
moving mean of the replica-averaged batch means exactly.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras.src.losses.loss import scale_loss_for_distribution

from kpt_tf.codec import HeatmapCodec


def weighted_heatmap_mse(predicted, target, weights):
    """Mean over batch, joints and pixels of w * (pred - target)^2 (HRNet's JointsMSELoss without 1/2).

    A joint of weight 0 (not annotated, or pushed out of the crop by augmentation) contributes nothing.
    """
    predicted = tf.cast(predicted, tf.float32)
    w = weights[:, None, None, :]
    return tf.reduce_mean(tf.square(predicted - target) * w)


class PoseTrainer(keras.Model):
    """Trains `net` (images -> list of per-stack heatmaps) from batches `(images, {"joints", "weights"})`."""

    def __init__(self, net: keras.Model, codec: HeatmapCodec, xla: bool = False, **kwargs):
        super().__init__(name=kwargs.pop("name", "pose_trainer"), **kwargs)
        self.net = net
        self.codec = codec
        self.xla = xla
        self.num_stacks = len(net.outputs)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.stack_trackers = [keras.metrics.Mean(name=f"loss_stack{s + 1}") for s in range(self.num_stacks)]
        # Only the XLA path nests a tf.function (fit already traces train_step); a nested non-XLA function
        # would forbid the synchronized BN all-reduce for nothing.
        self._forward_backward = (tf.function(self._forward_backward_impl, jit_compile=True) if xla
                                  else self._forward_backward_impl)
        self._moving_statistics = [v for v in net.non_trainable_variables
                                   if v.path.endswith(("moving_mean", "moving_variance"))]

    def call(self, images, training=False):
        return self._stacks(self.net(tf.cast(images, tf.float32), training=training))

    @staticmethod
    def _stacks(outputs):
        """Per-stack heatmaps as a list (a one-stack functional model returns a bare tensor)."""
        return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]

    @property
    def metrics(self):
        return [self.loss_tracker, *self.stack_trackers]

    def _heatmap_losses(self, outputs, joints, weights):
        targets, target_weights = self.codec.encode(joints, weights)
        per_stack = [weighted_heatmap_mse(o, targets, target_weights) for o in outputs]
        return tf.add_n(per_stack), per_stack

    def _forward_backward_impl(self, images, joints, weights):
        variables = self.net.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self._stacks(self.net(tf.cast(images, tf.float32), training=True))
            loss, per_stack = self._heatmap_losses(outputs, joints, weights)
            # Gradients are summed across replicas by the optimizer: scale so the sum is the global mean.
            scaled = self.optimizer.scale_loss(scale_loss_for_distribution(loss))
        grads = tape.gradient(scaled, variables)
        return loss, per_stack, grads

    def train_step(self, data):
        images, targets = data
        loss, per_stack, grads = self._forward_backward(images, targets["joints"], targets["weights"])
        self.optimizer.apply_gradients(zip(grads, self.net.trainable_variables))
        if self.xla:
            self._average_moving_statistics()
        return self._update_metrics(loss, per_stack)

    def _average_moving_statistics(self):
        """Replica-mean of the BN moving statistics (a no-op on one replica)."""
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1 or not self._moving_statistics:
            return
        local = [tf.identity(v.value) for v in self._moving_statistics]
        for v, mean in zip(self._moving_statistics, ctx.all_reduce(tf.distribute.ReduceOp.MEAN, local)):
            v.assign(mean)

    def test_step(self, data):
        images, targets = data
        outputs = self._stacks(self.net(tf.cast(images, tf.float32), training=False))
        loss, per_stack = self._heatmap_losses(outputs, targets["joints"], targets["weights"])
        return self._update_metrics(loss, per_stack)

    def _update_metrics(self, loss, per_stack):
        self.loss_tracker.update_state(loss)
        for tracker, value in zip(self.stack_trackers, per_stack):
            tracker.update_state(value)
        return {m.name: m.result() for m in self.metrics}

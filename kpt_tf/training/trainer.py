"""Trainers: `keras.Model` wrappers that train a functional pose network with `model.fit`.

The trainer seam: `train.trainer` in the config picks a registered trainer class (`pose` = `PoseTrainer`);
a new training objective (e.g. distillation from a teacher) subclasses `PoseTrainer`, overrides
`loss_names` and `compute_losses(images, outputs, joints, weights)`, and registers itself with
`@register_trainer("name")` -- the distributed step, XLA path and BN handling below stay shared.

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

from kpt_tf.codec import HeatmapCodec
from kpt_tf.models.outputs import stage_outputs
from kpt_tf.training.keras_compat import BuiltBeforeFit, per_replica_logs, scale_loss_for_distribution
from kpt_tf.training.losses import per_stage_mse

TRAINERS: dict[str, type] = {}


def register_trainer(name: str):
    """Class decorator: make a trainer class selectable as `train.trainer = name`."""
    def add(cls):
        if name in TRAINERS and TRAINERS[name] is not cls:
            raise ValueError(f"trainer {name!r} is registered twice")
        TRAINERS[name] = cls
        return cls
    return add


def make_trainer(config, net: keras.Model, codec: HeatmapCodec, xla: bool) -> keras.Model:
    """The trainer the config's `train.trainer` names (default `pose`), wrapped around `net`."""
    name = str(config.train.get("trainer", "pose"))
    if name not in TRAINERS:
        raise ValueError(f"config train.trainer {name!r}: unknown trainer; registered: {sorted(TRAINERS)}")
    return TRAINERS[name].from_config(config, net, codec, xla)


@register_trainer("pose")
class PoseTrainer(BuiltBeforeFit, keras.Model):
    """Trains `net` (images -> per-stage heatmaps) from batches `(images, {"joints", "weights"})` with the
    target-weighted heatmap MSE summed over stages (intermediate supervision)."""

    def __init__(self, net: keras.Model, codec: HeatmapCodec, xla: bool = False, foreground_weight: float = 0.0,
                 **kwargs):
        super().__init__(name=kwargs.pop("name", "pose_trainer"), **kwargs)
        self.net = net
        self.foreground_weight = float(foreground_weight)  # train.foreground_weight (losses.weighted_heatmap_mse)
        self.codec = codec
        self.xla = xla
        self.num_stacks = len(net.outputs)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.loss_names()}
        # Only the XLA path nests a tf.function (fit already traces train_step); a nested non-XLA function
        # would forbid the synchronized BN all-reduce for nothing.
        self._forward_backward = (tf.function(self._forward_backward_impl, jit_compile=True) if xla
                                  else self._forward_backward_impl)
        self._moving_statistics = [v for v in net.non_trainable_variables
                                   if v.path.endswith(("moving_mean", "moving_variance"))]

    @classmethod
    def from_config(cls, config, net, codec, xla):
        """Built by `make_trainer`; subclasses read their own config keys here."""
        return cls(net, codec, xla=xla, foreground_weight=float(config.train.get("foreground_weight", 0.0)))

    # --- the hook ---------------------------------------------------------------------------------
    def loss_names(self) -> list[str]:
        """Names of the values `compute_losses` returns ("loss", the total, first); one metric each."""
        return ["loss", *(f"loss_stack{s + 1}" for s in range(self.num_stacks))]

    def compute_losses(self, images, outputs, joints, weights) -> dict:
        """Losses of one batch: `outputs` are the network's per-stage heatmaps on `images` (float32 pixels),
        `joints` [B, J, 2] model-input pixels, `weights` [B, J]. Returns {name: scalar}, "loss" minimised."""
        targets, target_weights = self.codec.encode(joints, weights)
        per_stack = per_stage_mse(outputs, targets, target_weights, self.foreground_weight)
        losses = {"loss": tf.add_n(per_stack)}
        losses.update({f"loss_stack{s + 1}": v for s, v in enumerate(per_stack)})
        return losses

    # --- shared machinery ---------------------------------------------------------------------------
    def call(self, images, training=False):
        return stage_outputs(self.net(tf.cast(images, tf.float32), training=training))

    @property
    def metrics(self):
        return list(self.trackers.values())

    def _forward_backward_impl(self, images, joints, weights):
        variables = self.net.trainable_variables
        images = tf.cast(images, tf.float32)
        with tf.GradientTape() as tape:
            outputs = stage_outputs(self.net(images, training=True))
            losses = self.compute_losses(images, outputs, joints, weights)
            # Gradients are summed across replicas by the optimizer: scale so the sum is the global mean.
            scaled = self.optimizer.scale_loss(scale_loss_for_distribution(losses["loss"]))
        grads = tape.gradient(scaled, variables)
        return losses, grads

    def train_step(self, data):
        images, targets = data
        losses, grads = self._forward_backward(images, targets["joints"], targets["weights"])
        self.optimizer.apply_gradients(zip(grads, self.net.trainable_variables))
        if self.xla:
            self._average_moving_statistics()
        return self._update_metrics(losses)

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
        images = tf.cast(images, tf.float32)
        outputs = stage_outputs(self.net(images, training=False))
        return self._update_metrics(self.compute_losses(images, outputs, targets["joints"], targets["weights"]))

    def _update_metrics(self, losses: dict):
        for name, tracker in self.trackers.items():
            tracker.update_state(losses[name])
        return per_replica_logs({name: tracker.result() for name, tracker in self.trackers.items()},
                                self.distribute_strategy)

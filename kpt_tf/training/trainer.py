"""Trainers: `keras.Model` wrappers that train a functional pose network with `model.fit`.

The trainer seam: `train.trainer` in the config picks a registered trainer class (`pose` = `PoseTrainer`);
a new training objective (e.g. distillation from a teacher) subclasses `PoseTrainer`, overrides
`loss_names` and `compute_losses(images, outputs, joints, weights)`, and registers itself with
`@register_trainer("name")` -- the distributed step, XLA path and BN handling below stay shared. `TRAINERS` lists
the built-in trainers by module (imported when named, so nothing generic imports a trainer plugin); a trainer
with keys of its own declares their section (`section`, a `kpt_tf.registry.ConfigSection`; `make_trainer` fills
and checks it) and may add to `kpt_tf.train --dry_run`'s report (`dry_run`).

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
from kpt_tf.registry import Registry
from kpt_tf.training.keras_compat import BuiltBeforeFit, per_replica_logs, scale_loss_for_distribution
from kpt_tf.training.losses import POSE_LOSSES

TRAINERS = Registry("trainer", "config train.trainer", builtins={
    "pose": "kpt_tf.training.trainer",
    "distill": "kpt_tf.distill.trainer",
})


def register_trainer(name: str):
    """Class decorator: make a trainer class selectable as `train.trainer = name`."""
    return TRAINERS.register(name)


def trainer_class(config) -> type:
    """The trainer class the config's `train.trainer` names (ValueError listing the known ones)."""
    return TRAINERS.get(config.train.trainer)


def trainer_section(name: str, **values):
    """A new config section of the keys trainer `name` declares (e.g. `distill`): its defaults, then `values`."""
    section = TRAINERS.get(name).section
    if section is None:
        raise ValueError(f"trainer {name!r} declares no config section of its own")
    return section.make(**values)


def resolve_trainer_config(config):
    """The config with the section its trainer declares (if any) completed from the declaration and checked (in
    place; returned). A config without that section gets the declared defaults."""
    section = trainer_class(config).section
    if section is not None:
        if section.path not in config:
            with config.unlocked():
                config[section.path] = section.make()
        section.fill(config[section.path])
    return config


def make_trainer(config, net: keras.Model, codec: HeatmapCodec, xla: bool) -> keras.Model:
    """The trainer the config's `train.trainer` names, wrapped around `net` (its config section filled in place)."""
    return trainer_class(resolve_trainer_config(config)).from_config(config, net, codec, xla)


@register_trainer("pose")
class PoseTrainer(BuiltBeforeFit, keras.Model):
    """Trains `net` (images -> per-stage heatmaps) from batches `(images, {"joints", "weights"})` with the
    target-weighted heatmap MSE summed over stages (intermediate supervision)."""

    # The config section of the trainer's own keys (`kpt_tf.registry.ConfigSection`), None: it reads `train` only.
    section = None
    # Its per-stage loss on the ground-truth heatmaps (`losses.POSE_LOSSES`).
    pose_loss = "heatmap_mse"

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
        return cls(net, codec, xla=xla, foreground_weight=float(config.train.foreground_weight))

    @classmethod
    def dry_run(cls, config) -> dict:
        """What `kpt_tf.train --dry_run` reports of this trainer besides the network (nothing for `pose`)."""
        return {}

    # --- the hook ---------------------------------------------------------------------------------
    def loss_names(self) -> list[str]:
        """Names of the values `compute_losses` returns ("loss", the total, first); one metric each."""
        return ["loss", *(f"loss_stack{s + 1}" for s in range(self.num_stacks))]

    def compute_losses(self, images, outputs, joints, weights) -> dict:
        """Losses of one batch: `outputs` are the network's per-stage heatmaps on `images` (float32 pixels),
        `joints` [B, J, 2] model-input pixels, `weights` [B, J]. Returns {name: scalar}, "loss" minimised."""
        targets, target_weights = self.codec.encode(joints, weights)
        per_stack = POSE_LOSSES.get(self.pose_loss)(outputs, targets, target_weights, self.foreground_weight)
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

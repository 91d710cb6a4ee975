"""The trainer seam (kpt_tf/training/trainer.py): the loss hook, the registry, one-stack networks."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs.base import base_config
from kpt_tf.codec import HeatmapCodec
from kpt_tf.models.hourglass import build_hourglass
from kpt_tf.training.losses import weighted_heatmap_mse
from kpt_tf.training.trainer import TRAINERS, PoseTrainer, make_trainer, register_trainer

CODEC = HeatmapCodec(input_size=64, heatmap_size=16, sigma=2.0)


def batch(n=4, joints=16, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 64, 64, 3)).astype(np.uint8)
    return images, {"joints": rng.uniform(8, 56, (n, joints, 2)).astype(np.float32),
                    "weights": np.ones((n, joints), np.float32)}


@register_trainer("test_extra_term")
class ExtraTermTrainer(PoseTrainer):
    """A subclass that adds a term without copying train_step: what distillation does."""

    def loss_names(self):
        return [*super().loss_names(), "loss_extra"]

    def compute_losses(self, images, outputs, joints, weights):
        losses = super().compute_losses(images, outputs, joints, weights)
        extra = 0.5 * tf.reduce_mean(tf.square(outputs[-1]))
        losses["loss_extra"] = extra
        losses["loss"] = losses["loss"] + extra
        return losses


def test_the_loss_is_the_weighted_mse_summed_over_stacks():
    net = build_hourglass(2, 16, 16, depth=1, input_size=64)
    trainer = PoseTrainer(net, CODEC)
    images, targets = batch()
    outputs = trainer(images)
    losses = trainer.compute_losses(tf.cast(images, tf.float32), outputs, targets["joints"], targets["weights"])
    heatmaps, weights = CODEC.encode(targets["joints"], targets["weights"])
    per_stack = [weighted_heatmap_mse(o, heatmaps, weights).numpy() for o in outputs]
    assert set(losses) == {"loss", "loss_stack1", "loss_stack2"}
    np.testing.assert_allclose(losses["loss"].numpy(), sum(per_stack), rtol=1e-6)


def test_foreground_weight_scales_each_pixel_by_one_plus_weight_times_target_and_comes_from_the_config():
    rng = np.random.default_rng(1)
    target = tf.constant(rng.uniform(0, 1, (2, 4, 4, 3)), tf.float32)
    predicted = tf.constant(rng.uniform(0, 1, (2, 4, 4, 3)), tf.float32)
    weights = tf.constant([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    expected = np.mean((predicted - target) ** 2 * weights[:, None, None, :] * (1 + 10 * target))
    np.testing.assert_allclose(weighted_heatmap_mse(predicted, target, weights, 10.0).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(weighted_heatmap_mse(predicted, target, weights, 0.0).numpy(),
                               weighted_heatmap_mse(predicted, target, weights).numpy())
    # A negative target (a teacher's heatmap below 0) weighs 1, never less: the loss stays a distance.
    negative = -target
    expected = np.mean((predicted - negative) ** 2 * weights[:, None, None, :])
    np.testing.assert_allclose(weighted_heatmap_mse(predicted, negative, weights, 10.0).numpy(), expected, rtol=1e-6)
    config = base_config()
    assert config.train.foreground_weight == 0.0       # default: the plain MSE
    config.train.foreground_weight = 4.0
    trainer = make_trainer(config, build_hourglass(1, 16, 16, depth=1, input_size=64), CODEC, xla=False)
    assert trainer.foreground_weight == 4.0


@pytest.mark.slow
def test_a_registered_subclass_adds_a_term_and_a_metric_through_fit():
    config = base_config()
    config.train.trainer = "test_extra_term"
    net = build_hourglass(1, 16, 16, depth=1, input_size=64)
    trainer = make_trainer(config, net, CODEC, xla=False)
    assert isinstance(trainer, ExtraTermTrainer)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    images, targets = batch()
    history = trainer.fit(tf.data.Dataset.from_tensors((images, targets)).repeat(2), epochs=1, verbose=0, shuffle=False)
    assert {"loss", "loss_stack1", "loss_extra"} <= set(history.history)
    assert history.history["loss"][0] > history.history["loss_stack1"][0]


@pytest.mark.slow
def test_one_stack_network_trains_with_xla_and_unknown_trainers_are_refused():
    net = build_hourglass(1, 16, 16, depth=1, input_size=64)
    trainer = PoseTrainer(net, CODEC, xla=True)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    images, targets = batch()
    before = net.get_layer("head0").kernel.numpy().copy()
    trainer.fit(tf.data.Dataset.from_tensors((images, targets)), epochs=1, verbose=0, shuffle=False)
    assert not np.allclose(before, net.get_layer("head0").kernel.numpy())
    config = base_config()
    config.train.trainer = "nope"
    with pytest.raises(ValueError, match="nope.*pose"):
        make_trainer(config, net, CODEC, xla=False)
    assert TRAINERS["pose"] is PoseTrainer


def test_step_and_cosine_schedules():
    from kpt_tf.training.loop import make_optimizer, make_schedule

    config = base_config()
    config.train.epochs, config.train.learning_rate, config.train.lr_drop_epochs = 10, 1e-3, (6,)
    step = make_schedule(config, steps_per_epoch=10)
    assert [float(step(s)) for s in (0, 60, 61)] == pytest.approx([1e-3, 1e-3, 1e-4], rel=1e-5)
    config.train.schedule, config.train.warmup_epochs = "cosine", 1.0
    cosine = make_schedule(config, steps_per_epoch=10)
    assert float(cosine(0)) == pytest.approx(1e-4, rel=1e-5) and float(cosine(10)) == pytest.approx(1e-3, rel=1e-5)
    assert float(cosine(55)) == pytest.approx(5e-4, rel=1e-2) and float(cosine(100)) == pytest.approx(0, abs=1e-9)
    config.train.schedule = "exotic"
    with pytest.raises(ValueError, match="step or cosine"):
        make_optimizer(config, steps_per_epoch=10)

"""Learning-rate schedules: the step schedule's warm-up, and that it survives the config round trip."""

from __future__ import annotations

import keras
import pytest

from configs.demo import get_config
from kpt_tf.training.loop import make_schedule
from kpt_tf.training.schedules import LinearWarmup


def _lr(schedule, step):
    return float(schedule(step)) if callable(schedule) else float(schedule)


def test_step_schedule_warms_up_then_drops_where_the_config_says():
    c = get_config()
    c.train.schedule, c.train.learning_rate, c.train.warmup_epochs = "step", 1e-2, 1.0
    c.train.epochs, c.train.lr_drop_epochs, c.train.lr_drop_factor = 4, (2, 3), 0.1
    schedule = make_schedule(c, steps_per_epoch=10)
    assert _lr(schedule, 0) == pytest.approx(1e-3)
    assert _lr(schedule, 5) == pytest.approx(5.5e-3)
    assert [_lr(schedule, s) for s in (10, 20)] == pytest.approx([1e-2, 1e-2])
    assert [_lr(schedule, s) for s in (21, 30, 31)] == pytest.approx([1e-3, 1e-3, 1e-4])
    c.train.warmup_epochs = 0.0
    assert _lr(make_schedule(c, steps_per_epoch=10), 0) == pytest.approx(1e-2)


def test_warmup_schedule_serialises_for_saved_optimizers():
    inner = keras.optimizers.schedules.PiecewiseConstantDecay([100], [1e-2, 1e-3])
    schedule = LinearWarmup(inner, 50, 1e-3)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert [float(again(s)) for s in (25, 75, 150)] == pytest.approx([float(schedule(s)) for s in (25, 75, 150)])


def test_cosine_reaches_its_floor_at_the_configured_fraction_and_holds_it():
    c = get_config()
    c.train.schedule, c.train.learning_rate, c.train.warmup_epochs, c.train.epochs = "cosine", 1e-2, 1.0, 10
    full = make_schedule(c, steps_per_epoch=10)
    assert _lr(full, 0) == pytest.approx(1e-3)
    assert _lr(full, 10) == pytest.approx(1e-2)
    assert _lr(full, 55) == pytest.approx(5e-3, rel=1e-3)       # half-way through the decay
    assert _lr(full, 100) == pytest.approx(0.0, abs=1e-9)
    c.train.cosine_fraction, c.train.cosine_floor = 0.8, 0.01
    held = make_schedule(c, steps_per_epoch=10)
    assert _lr(held, 45) == pytest.approx(5.05e-3, rel=1e-3)     # mid-decay: floor + half the way
    assert [_lr(held, s) for s in (80, 90, 100)] == pytest.approx([1e-4, 1e-4, 1e-4])

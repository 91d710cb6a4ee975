"""Learning-rate schedules Keras lacks: a linear warm-up in front of any schedule (Keras' CosineDecay has its own
warm-up; PiecewiseConstantDecay has none, and Adam at 1e-2 needs one: issue 8, BUILD_NOTES.md)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kpt_tf")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """`initial` rising linearly to `after(warmup_steps)` over `warmup_steps` steps, then `after(step)`.

    `after` is a Keras schedule or a float; its own step count is the global one (drops stay where the config
    puts them, warm-up included)."""

    def __init__(self, after, warmup_steps: int, initial: float):
        self.after = after
        self.warmup_steps = int(warmup_steps)
        self.initial = float(initial)

    def _after(self, step):
        if isinstance(self.after, keras.optimizers.schedules.LearningRateSchedule):
            return self.after(step)
        return ops.convert_to_tensor(float(self.after), "float32")

    def __call__(self, step):
        step = ops.cast(step, "float32")
        after = self._after(step)
        if self.warmup_steps <= 0:
            return after
        fraction = ops.minimum(step / float(self.warmup_steps), 1.0)
        warm = self.initial + (self._after(float(self.warmup_steps)) - self.initial) * fraction
        return ops.where(step < float(self.warmup_steps), warm, after)

    def get_config(self):
        after = self.after
        if isinstance(after, keras.optimizers.schedules.LearningRateSchedule):
            after = keras.saving.serialize_keras_object(after)
        return {"after": after, "warmup_steps": self.warmup_steps, "initial": self.initial}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["after"], dict):
            config["after"] = keras.saving.deserialize_keras_object(config["after"])
        return cls(**config)

"""Process-wide TF/Keras settings of one training run, set on entry and restored on exit.

Experiments and the demo run many trainings in one process: a mixed-precision policy or op determinism
left behind by one run would silently change the next.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from kpt_tf.training.keras_compat import disable_op_determinism, is_op_determinism_enabled


@contextlib.contextmanager
def run_settings(seed: int, mixed_precision: bool = False, deterministic: bool = False):
    """Seed every RNG, and set the dtype policy and op determinism for the duration of the block."""
    previous_policy = keras.mixed_precision.global_policy()
    previously_deterministic = is_op_determinism_enabled()
    keras.utils.set_random_seed(int(seed))
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        if deterministic and not previously_deterministic:
            disable_op_determinism()

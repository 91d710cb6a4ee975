"""Per-run process settings are restored (kpt_tf/training/settings.py); the typed history round-trips."""

from __future__ import annotations

import keras
import pytest
from tensorflow.python.framework import config as tf_framework_config

from kpt_tf.training.history import EpochScores, history_from_summary
from kpt_tf.training.settings import run_settings


def test_mixed_precision_and_determinism_are_restored_after_a_run():
    assert keras.mixed_precision.global_policy().name == "float32"
    assert not tf_framework_config.is_op_determinism_enabled()
    with run_settings(seed=0, mixed_precision=True, deterministic=True):
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        assert tf_framework_config.is_op_determinism_enabled()
    assert keras.mixed_precision.global_policy().name == "float32"
    assert not tf_framework_config.is_op_determinism_enabled()
    with pytest.raises(RuntimeError):
        with run_settings(seed=0, mixed_precision=True):
            raise RuntimeError("a failing run")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_epoch_scores_round_trip_and_log_keys():
    scores = EpochScores(epoch=3, seconds=12.5, mean=50.0, mean_01=10.0, per_joint={"head_top": 90.0},
                         per_joint_01={"head_top": 30.0})
    assert EpochScores.from_dict(scores.to_dict()) == scores
    assert history_from_summary({"history": [scores.to_dict()]}) == [scores]
    assert scores.logs() == {"val_pckh_mean": 50.0, "val_pckh01_mean": 10.0, "val_pckh_head_top": 90.0}

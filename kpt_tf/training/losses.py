"""Heatmap losses. A trainer combines them in its `compute_losses` hook (kpt_tf.training.trainer)."""

from __future__ import annotations

import tensorflow as tf


def weighted_heatmap_mse(predicted, target, weights):
    """Mean over batch, joints and pixels of w * (pred - target)^2 (HRNet's JointsMSELoss without its 1/2).

    `weights` [B, J]: a joint of weight 0 (not annotated, or pushed off the heatmap by augmentation)
    contributes nothing.
    """
    predicted = tf.cast(predicted, tf.float32)
    target = tf.cast(target, tf.float32)
    w = tf.cast(weights, tf.float32)[:, None, None, :]
    return tf.reduce_mean(tf.square(predicted - target) * w)


def per_stage_mse(stage_outputs, target, weights) -> list:
    """`weighted_heatmap_mse` of every supervised stage against the same target (intermediate supervision)."""
    return [weighted_heatmap_mse(o, target, weights) for o in stage_outputs]

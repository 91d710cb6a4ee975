"""Heatmap losses. A trainer combines them in its `compute_losses` hook (kpt_tf.training.trainer)."""

from __future__ import annotations

import tensorflow as tf


def weighted_heatmap_mse(predicted, target, weights, foreground_weight: float = 0.0):
    """Mean over batch, joints and pixels of w * (pred - target)^2 (HRNet's JointsMSELoss without its 1/2).

    `weights` [B, J]: a joint of weight 0 (not annotated, or pushed off the heatmap by augmentation)
    contributes nothing. `foreground_weight` f > 0 multiplies each pixel's term by (1 + f * target), so the
    Gaussian blob (a few % of the pixels) is not outweighed by the background; 0 is the plain MSE.
    """
    predicted = tf.cast(predicted, tf.float32)
    target = tf.cast(target, tf.float32)
    w = tf.cast(weights, tf.float32)[:, None, None, :]
    if foreground_weight:
        w = w * (1.0 + float(foreground_weight) * target)
    return tf.reduce_mean(tf.square(predicted - target) * w)


def per_stage_mse(stage_outputs, target, weights, foreground_weight: float = 0.0) -> list:
    """`weighted_heatmap_mse` of every supervised stage against the same target (intermediate supervision)."""
    return [weighted_heatmap_mse(o, target, weights, foreground_weight) for o in stage_outputs]

"""Heatmap losses. A trainer combines them in its `compute_losses` hook (kpt_tf.training.trainer).

`POSE_LOSSES`: per-stage losses against the ground-truth heatmaps, by name (`PoseTrainer.pose_loss`), each
`loss(stage_outputs, target, weights, foreground_weight) -> [scalar per stage]`; a new one registers itself with
`@POSE_LOSSES.register("name")`. The distillation losses have their own registry (`kpt_tf.distill.losses`).
"""

from __future__ import annotations

import tensorflow as tf

from kpt_tf.registry import Registry

POSE_LOSSES = Registry("pose loss", "PoseTrainer.pose_loss", builtins={"heatmap_mse": "kpt_tf.training.losses"})


def weighted_heatmap_mse(predicted, target, weights, foreground_weight: float = 0.0):
    """Mean over batch, joints and pixels of w * (pred - target)^2 (HRNet's JointsMSELoss without its 1/2).

    `weights` [B, J]: a joint of weight 0 (not annotated, or pushed off the heatmap by augmentation)
    contributes nothing. `foreground_weight` f > 0 multiplies each pixel's term by (1 + f * max(target, 0)), so the
    Gaussian blob (a few % of the pixels) is not outweighed by the background; 0 is the plain MSE. The clip: a
    teacher's heatmaps (the distillation term's target) can be negative, and a weight 1 + f * target < 0 made the
    loss negative and pushed the student away from the teacher there (an FPD run logged loss_kd -0.02, CI
    2026-12-07); the ground truth's Gaussians are >= 0, so their loss is unchanged.
    """
    predicted = tf.cast(predicted, tf.float32)
    target = tf.cast(target, tf.float32)
    w = tf.cast(weights, tf.float32)[:, None, None, :]
    if foreground_weight:
        w = w * (1.0 + float(foreground_weight) * tf.maximum(target, 0.0))
    return tf.reduce_mean(tf.square(predicted - target) * w)


@POSE_LOSSES.register("heatmap_mse")
def per_stage_mse(stage_outputs, target, weights, foreground_weight: float = 0.0) -> list:
    """`weighted_heatmap_mse` of every supervised stage against the same target (intermediate supervision)."""
    return [weighted_heatmap_mse(o, target, weights, foreground_weight) for o in stage_outputs]

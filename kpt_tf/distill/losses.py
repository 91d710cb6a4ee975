"""The FPD objective, applied to every student stage:

    (1 - alpha) * MSE_w(student, ground-truth heatmaps) + alpha * MSE_w(student, teacher's final heatmaps)

with the per-joint target weights w of the ground truth on both terms (FPD's code). A crop with no annotated
joint at all (unlabelled data) has no ground-truth term and trains on the teacher term over every joint;
`kd_on_all_joints` applies the teacher term to every joint of every crop.

`DISTILL_LOSSES`: the distillation losses by name (`config distill.loss`), each `loss(stage_outputs, gt_heatmaps,
target_weights, teacher_heatmaps, alpha, kd_on_all_joints, foreground_weight) -> [(ground-truth term, teacher term,
combined) per stage]`, the combined one minimised; a new one registers itself with `@DISTILL_LOSSES.register("name")`
(and, outside this module, is listed in `builtins` below so that naming it imports it).
"""

from __future__ import annotations

import tensorflow as tf

from kpt_tf.registry import Registry
from kpt_tf.training.losses import weighted_heatmap_mse

DISTILL_LOSSES = Registry("distillation loss", "config distill.loss", builtins={"fpd": "kpt_tf.distill.losses"})


def teacher_term_weights(target_weights, kd_on_all_joints: bool):
    """[B, J] weights of the teacher term: the ground truth's, or 1 for every joint of an unlabelled crop
    (or of every crop with `kd_on_all_joints`)."""
    target_weights = tf.cast(target_weights, tf.float32)
    ones = tf.ones_like(target_weights)
    if kd_on_all_joints:
        return ones
    unlabelled = tf.reduce_all(target_weights <= 0, axis=-1, keepdims=True)
    return tf.where(unlabelled, ones, target_weights)


@DISTILL_LOSSES.register("fpd")
def fpd_stage_losses(stage_outputs, gt_heatmaps, target_weights, teacher_heatmaps, alpha: float,
                     kd_on_all_joints: bool = False, foreground_weight: float = 0.0):
    """Per stage: (ground-truth term, teacher term, combined), each a scalar. `foreground_weight` (the
    trainer's `train.foreground_weight`) weights each term's pixels by its own target: the ground truth's
    Gaussians, the teacher's heatmaps."""
    kd_weights = teacher_term_weights(target_weights, kd_on_all_joints)
    teacher_heatmaps = tf.stop_gradient(tf.cast(teacher_heatmaps, tf.float32))
    out = []
    for predicted in stage_outputs:
        gt = weighted_heatmap_mse(predicted, gt_heatmaps, target_weights, foreground_weight)
        kd = weighted_heatmap_mse(predicted, teacher_heatmaps, kd_weights, foreground_weight)
        out.append((gt, kd, (1.0 - alpha) * gt + alpha * kd))
    return out

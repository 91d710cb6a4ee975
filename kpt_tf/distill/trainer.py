"""`DistillTrainer`: PoseTrainer whose loss hook adds FPD's teacher term (kpt_tf/distill/losses.py)."""

from __future__ import annotations

import tensorflow as tf

from kpt_tf.distill.losses import fpd_stage_losses
from kpt_tf.distill.teacher import Teacher
from kpt_tf.joints import JointSubset
from kpt_tf.training.trainer import PoseTrainer, register_trainer


@register_trainer("distill")
class DistillTrainer(PoseTrainer):
    """Student and frozen teacher in the same step; no teacher output is written anywhere."""

    def __init__(self, net, codec, teacher: Teacher, alpha: float = 0.5, kd_on_all_joints: bool = False,
                 xla: bool = False, foreground_weight: float = 0.0, **kwargs):
        super().__init__(net, codec, xla=xla, foreground_weight=foreground_weight,
                         name=kwargs.pop("name", "distill_trainer"), **kwargs)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"config distill.alpha must be in [0, 1], got {alpha}")
        self.teacher = teacher
        self.alpha = float(alpha)
        self.kd_on_all_joints = bool(kd_on_all_joints)

    @classmethod
    def from_config(cls, config, net, codec, xla):
        d = config.distill
        if not d.get("teacher"):
            raise ValueError("config distill.teacher is empty: give a SavedModel, training workdir or .keras file")
        teacher = Teacher(str(d.teacher), JointSubset.parse(config.joints), codec.input_size, codec.heatmap_size)
        if d.get("init_student"):
            _init_from(net, str(d.init_student))
        return cls(net, codec, teacher, alpha=float(d.alpha), kd_on_all_joints=bool(d.kd_on_all_joints), xla=xla,
                   foreground_weight=float(config.train.get("foreground_weight", 0.0)))

    def loss_names(self):
        names = ["loss", "loss_gt", "loss_kd"]
        for s in range(self.num_stacks):
            names += [f"loss_stack{s + 1}", f"loss_gt_stack{s + 1}", f"loss_kd_stack{s + 1}"]
        return names

    def compute_losses(self, images, outputs, joints, weights):
        targets, target_weights = self.codec.encode(joints, weights)
        teacher_heatmaps = self.teacher(images)
        stages = fpd_stage_losses(outputs, targets, target_weights, teacher_heatmaps, self.alpha,
                                  self.kd_on_all_joints, self.foreground_weight)
        losses = {"loss": tf.add_n([c for _, _, c in stages]), "loss_gt": tf.add_n([g for g, _, _ in stages]),
                  "loss_kd": tf.add_n([k for _, k, _ in stages])}
        for s, (gt, kd, combined) in enumerate(stages):
            losses[f"loss_stack{s + 1}"] = combined
            losses[f"loss_gt_stack{s + 1}"] = gt
            losses[f"loss_kd_stack{s + 1}"] = kd
        return losses


def _init_from(net, path: str) -> None:
    """Start the student from a trained network of the same architecture and joints (every weight by name)."""
    from kpt_tf import workdir
    from kpt_tf.models.weights import plan_copy

    plan = plan_copy(net, workdir.load_trained(path).weights())
    differ = plan.only_in_target + plan.shape_mismatched
    if differ:
        raise ValueError(f"config distill.init_student {path}: not the student's network "
                         f"({len(differ)} weights missing or of another shape, e.g. {differ[0][0]})")
    plan.apply()

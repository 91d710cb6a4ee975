"""`DistillTrainer` (`train.trainer = "distill"`): PoseTrainer whose loss hook adds the teacher term of the
distillation loss `distill.loss` names (kpt_tf/distill/losses.py), with its `distill` config section declared here."""

from __future__ import annotations

import tensorflow as tf

from kpt_tf.data.records import config_subset, records_subset
from kpt_tf.distill.losses import DISTILL_LOSSES
from kpt_tf.distill.teacher import Teacher
from kpt_tf.joints import JointSubset
from kpt_tf.registry import ConfigSection
from kpt_tf.training.trainer import PoseTrainer, register_trainer


def check_section(d) -> None:
    """The `distill` section, filled: alpha a weight, the loss a registered one."""
    if isinstance(d.alpha, bool) or not isinstance(d.alpha, (int, float)) or not 0.0 <= d.alpha <= 1.0:
        raise ValueError(f"config distill.alpha must be in [0, 1], got {d.alpha!r}")
    DISTILL_LOSSES.get(d.loss)     # refuses an unknown name, listing the known ones


# `config.distill`, declared once: configs/fpd_*.py make it (`kpt_tf.training.trainer.trainer_section`), a section
# lacking a key is filled from it.
SECTION = ConfigSection("distill", "trainer distill", dict(
    teacher="",                  # the trained teacher: an exported SavedModel, a training workdir or a .keras file
    alpha=0.5,                   # FPD's weight of the teacher term
    loss="fpd",                  # the distillation loss (kpt_tf.distill.losses.DISTILL_LOSSES)
    init_student="",             # start from a trained student of the same network and joints
    kd_on_all_joints=False,      # teacher term also where the ground truth is not annotated
    # the teacher's model section: what --dry_run sizes, and what kpt_tf.experiments.fpd trains when `teacher` is
    # empty (a given teacher's network comes from its own file)
    teacher_model=None,
), check=check_section)


@register_trainer("distill")
class DistillTrainer(PoseTrainer):
    """Student and frozen teacher in the same step; no teacher output is written anywhere."""

    section = SECTION

    def __init__(self, net, codec, teacher: Teacher, alpha: float = SECTION.defaults["alpha"],
                 kd_on_all_joints: bool = False, xla: bool = False, foreground_weight: float = 0.0,
                 loss: str = SECTION.defaults["loss"], **kwargs):
        super().__init__(net, codec, xla=xla, foreground_weight=foreground_weight,
                         name=kwargs.pop("name", "distill_trainer"), **kwargs)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"config distill.alpha must be in [0, 1], got {alpha}")
        self.teacher = teacher
        self.alpha = float(alpha)
        self.kd_on_all_joints = bool(kd_on_all_joints)
        self.stage_losses = DISTILL_LOSSES.get(loss)

    @classmethod
    def from_config(cls, config, net, codec, xla):
        d = config.distill          # filled and checked by make_trainer
        if not d.teacher:
            raise ValueError("config distill.teacher is empty: give a SavedModel, training workdir or .keras file")
        teacher = Teacher(str(d.teacher), config_subset(config), codec.input_size, codec.heatmap_size)
        if d.init_student:
            _init_from(net, str(d.init_student), config_subset(config))
        return cls(net, codec, teacher, alpha=float(d.alpha), kd_on_all_joints=bool(d.kd_on_all_joints), xla=xla,
                   foreground_weight=float(config.train.foreground_weight), loss=str(d.loss))

    @classmethod
    def dry_run(cls, config) -> dict:
        """The teacher's size (the architecture `distill.teacher_model`, on all joints, without weights), alpha and
        the loss."""
        from kpt_tf.models import build_net
        from kpt_tf.models.flops import flops_per_image
        from kpt_tf.models.weights import trainable_parameter_count

        d = config.distill
        if d.teacher_model is None:
            raise ValueError("config distill.teacher_model is not set: the teacher's model section (e.g. "
                             "kpt_tf.models.model_section(...)), which --dry_run sizes")
        teacher_config = config.copy_and_resolve_references()
        teacher_config.model = d.teacher_model
        teacher = build_net(teacher_config, records_subset("all", config.data.get("dir", "")))   # every joint
        return {"teacher_params": trainable_parameter_count(teacher),
                "teacher_flops_per_image": int(flops_per_image(teacher)), "alpha": float(d.alpha),
                "loss": str(d.loss)}

    def loss_names(self):
        names = ["loss", "loss_gt", "loss_kd"]
        for s in range(self.num_stacks):
            names += [f"loss_stack{s + 1}", f"loss_gt_stack{s + 1}", f"loss_kd_stack{s + 1}"]
        return names

    def compute_losses(self, images, outputs, joints, weights):
        targets, target_weights = self.codec.encode(joints, weights)
        teacher_heatmaps = self.teacher(images)
        stages = self.stage_losses(outputs, targets, target_weights, teacher_heatmaps, self.alpha,
                                   self.kd_on_all_joints, self.foreground_weight)
        losses = {"loss": tf.add_n([c for _, _, c in stages]), "loss_gt": tf.add_n([g for g, _, _ in stages]),
                  "loss_kd": tf.add_n([k for _, k, _ in stages])}
        for s, (gt, kd, combined) in enumerate(stages):
            losses[f"loss_stack{s + 1}"] = combined
            losses[f"loss_gt_stack{s + 1}"] = gt
            losses[f"loss_kd_stack{s + 1}"] = kd
        return losses


def _init_from(net, path: str, joints: JointSubset) -> None:
    """Start the student from a trained network of the same architecture and joints: every weight by name, from
    the file's weights alone (a SavedModel's checkpoint; its graph is never loaded)."""
    from kpt_tf.models.weights import EVERY_DIFFERENCE, CopyRefused, copy_by_name
    from kpt_tf.trained import read_weights

    try:
        stored = read_weights(path)
    except (FileNotFoundError, ValueError) as e:
        raise ValueError(f"config distill.init_student {path}: {e}") from None
    if stored.joints is not None and stored.joints.names != joints.names:
        raise ValueError(f"config distill.init_student {path}: its heads predict {stored.joints.name}, the student's "
                         f"{joints.name}")
    try:
        copy_by_name(net, stored.weights, stored.description, refuse=EVERY_DIFFERENCE)
    except CopyRefused as e:
        raise ValueError(f"config distill.init_student {path}: not the student's network ({e.details})") from None

"""The frozen teacher: loaded from an exported SavedModel, a training workdir or a `.keras` file, its final
heatmaps restricted by joint name to the student's joints."""

from __future__ import annotations

import tensorflow as tf

from kpt_tf.joints import JointSubset
from kpt_tf.models.outputs import final_heatmaps
from kpt_tf.trained import load_trained


class TeacherError(ValueError):
    """A teacher that cannot teach this student (message says why); raised before any training step."""


class Teacher:
    """images float32 [B, S, S, 3] (0..255) -> the teacher's final heatmaps for the student's joints.

    A Keras teacher runs in inference mode (BatchNormalization uses its moving statistics, nothing is
    updated) and is non-trainable; a SavedModel teacher runs its `heatmaps` endpoint (flip test as exported).
    """

    def __init__(self, path, student_joints: JointSubset, student_input_size: int, student_heatmap_size: int):
        try:
            trained = load_trained(path)
        except (FileNotFoundError, ValueError) as e:
            raise TeacherError(f"distill.teacher {path}: {e}") from None
        joints = trained.joints
        if joints is None:
            raise TeacherError(f"distill.teacher {path}: its joint subset is not recorded")
        try:
            channels = joints.channels_of(student_joints)
        except ValueError as e:
            raise TeacherError(f"distill.teacher {path} cannot teach the student's joints: its {e}") from None
        codec = trained.codec()
        if (codec.input_size, codec.heatmap_size) != (student_input_size, student_heatmap_size):
            raise TeacherError(
                f"distill.teacher {path}: input {codec.input_size} px / heatmaps {codec.heatmap_size} px, the "
                f"student {student_input_size} / {student_heatmap_size}; distillation needs the same crops and "
                "heatmap grid (train the student at the teacher's resolution)")
        self.path, self.joints, self.trained = path, joints, trained
        self.channels = tf.constant(channels, tf.int32)
        self.net = trained.net
        if self.net is not None:
            self.net.trainable = False

    @property
    def variables(self):
        return self.net.weights if self.net is not None else self.trained.savedmodel.variables

    def __call__(self, images):
        if self.net is not None:
            heatmaps = final_heatmaps(self.net(images, training=False))
        else:
            heatmaps = self.trained.savedmodel.heatmaps(images)
        return tf.gather(tf.cast(heatmaps, tf.float32), self.channels, axis=-1)

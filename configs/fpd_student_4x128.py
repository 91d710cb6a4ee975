"""Fast Pose Distillation's student: 4 stacks x 128 features (~3 M parameters), sigma 2 targets."""

from configs.base import base_config


def get_config():
    c = base_config()
    c.name = "fpd_student_4x128"
    c.model.num_stacks = 4
    c.model.channels = 128
    c.codec.sigma = 2.0
    return c

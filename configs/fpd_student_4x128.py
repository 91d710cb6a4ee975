"""Fast Pose Distillation's student: 4 stacks x 128 features, sigma 2 targets.

FPD's code scales the stem with the width (3,247,616 trainable parameters, "about 3 M"); with bearpaw's fixed
stem (`--config.model.stem=bearpaw`) the same network has 3,332,032.
"""

from configs.base import base_config


def get_config():
    c = base_config()
    c.name = "fpd_student_4x128"
    c.model.num_stacks = 4
    c.model.channels = 128
    c.model.stem = "scaled"
    c.codec.sigma = 2.0
    return c

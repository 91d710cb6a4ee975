"""Fast Pose Distillation's student: 4 stacks x 128 features, sigma 2 targets.

FPD's own network (its `lib/models/hourglass.py` with NUM_FEATURES 128: the stem scaled with the width, C/4 and C/2):
3,287,936 trainable parameters, "about 3 M"; with bearpaw's fixed stem (`--config.model.stem=bearpaw`) the same
network has 3,550,272.
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

"""2-stack hourglass, 256 features, 16 joints: bearpaw hg_s2_b1 / HRNet's 2-stack baseline (6,730,912 parameters)."""

from configs.base import base_config


def get_config():
    c = base_config()
    c.name = "hg2_256"
    c.model.num_stacks = 2
    c.model.channels = 256
    return c

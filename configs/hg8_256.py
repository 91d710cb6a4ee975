"""8-stack hourglass, 256 features, 16 joints: Newell et al.'s network (bearpaw hg_s8_b1: 25,594,624 parameters)."""

from configs.base import base_config


def get_config():
    c = base_config()
    c.name = "hg8_256"
    c.model.num_stacks = 8
    c.model.channels = 256
    return c

"""The demo: a small hourglass that learns the embedded (procedural) data set in CPU minutes.

Same architecture family as hg2_256 (2 stacks, depth-4 hourglasses, intermediate supervision), shrunk in
width and input size so that `make demo` trains, evaluates, exports and serves in minutes on 2 cores.
"""

from configs.base import base_config


def get_config():
    c = base_config()
    c.name = "demo"
    c.joints = "all"
    c.model.num_stacks = 2
    c.model.channels = 64
    c.model.input_size = 128          # 32x32 heatmaps
    # FPD-style stem scaled with the width (16/32 channels): bearpaw's fixed 64/128 stem was half of this
    # narrow network's FLOPs; scaled, an epoch takes ~0.55x the time at the same PCKh per step (BUILD_NOTES.md).
    c.model.stem = "scaled"
    # sigma 2 on the 32x32 heatmaps: with sigma 1 the network sat on the all-zero plateau for the whole short
    # schedule (2.5 % PCKh after 240 steps vs 16.7 % with sigma 2; BUILD_NOTES.md).
    c.codec.sigma = 2.0
    c.train.batch_size = 16
    c.train.epochs = 12
    c.train.steps_per_epoch = 0       # one pass over the generated training people
    c.train.learning_rate = 1e-3      # a short schedule: larger steps, x0.1 for the last two epochs
    c.train.lr_drop_epochs = (10,)
    c.train.skeleton_images = 4
    c.data.shuffle_buffer = 1024
    return c

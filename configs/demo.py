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
    c.codec.sigma = 1.0
    c.train.batch_size = 16
    c.train.epochs = 14
    c.train.steps_per_epoch = 0       # one pass over the generated training people
    c.train.learning_rate = 1e-3      # a short schedule: larger steps, dropped for the last epochs
    c.train.lr_drop_epochs = (10, 13)
    c.train.skeleton_images = 4
    c.data.shuffle_buffer = 1024
    return c

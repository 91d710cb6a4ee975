"""Defaults for KPTransfer experiments (kpt_tf.experiments.kptransfer).

An experiment is a chain of joint subsets: the first is the source, each later step is a target that
starts from the previous step's model. Every target is trained three ways with the same data, schedule,
epochs and seeds: random initialisation, transfer + fine-tune, frozen weight extraction.
"""

import ml_collections

from configs.base import add_section, base_config


def kptransfer_config(steps, name) -> ml_collections.ConfigDict:
    c = base_config()
    c.name = name
    c.joints = steps[0]
    # The network of every step (the paper uses the 8-stack hourglass; 2x256 is the usual budget).
    c.model.num_stacks = 2
    c.model.channels = 256
    add_section(c, "experiment", dict(
        steps=tuple(steps),          # joint subsets; step k > 0 transfers from step k - 1
        # one records directory per step ("" = data.dir), when the chain crosses data sets: each step's joints are
        # read against its records' layout and heads map by joint name (MPII's people -> COCO's)
        data_dirs=(),
        seeds=(0, 1, 2),
        arms=("random", "transfer", "frozen"),
        map_heads=True,              # carry shared joints' head channels over by name
        source_epochs=100,           # epochs of the source (step 0)
        target_epochs=100,           # epochs of every target arm
        # non-empty: rank these sources for the last step's target by MI and transfer from the best and the
        # worst (kpt_tf.experiments.kptransfer.run_source_ranking), e.g. ("upper", "arms", "torso_head")
        candidates=(),
    ))
    # --quick: a few minutes on 2 CPU cores (tiny network, few people, few epochs).
    add_section(c, "quick", dict(
        num_stacks=1, channels=32, depth=4, input_size=128, batch_size=16, source_epochs=3,
        target_epochs=3, steps_per_epoch=20, seeds=(0, 1, 2)))
    return c

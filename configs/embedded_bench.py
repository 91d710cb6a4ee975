"""The benchmark setting on the embedded data set: the KPTransfer bench (bench/kptransfer.py) and later the
distillation and part-based experiments.

The demo recipe (configs/demo.py: Adam 1e-2, warm-up + cosine, foreground-weighted MSE, 128 px, 64 features)
on a 1-stack hourglass for 36 epochs x 120 batches of 16 (4,320 steps, ~8.5 minutes per training on 2 idle cores),
12,000 generated people. The 28-epoch figures below are the setting's first version (cosine to 0 at the last step;
`use_first_schedule`); the 36-epoch three-seed bench (2026-12-06, 74 min): random 71.86 with +0.78 over the last
fifth, transfer 79.93, frozen 29.21 (BUILD_NOTES, "KPTransfer convergence").
One stack because every training of the bench pays the step's start-up and per-step cost ten times: at 0.61x the
2-stack step cost it trains 1.7x the steps in the same time. Measured 2026-12-02 (2 idle
cores, random init on `lower`, 12,000 people, one seed): 72.1 mean PCKh@0.5 with flip test (Hip 81.6, Knee 66.1,
Ankle 66.9; mean-pose baseline 12.5) in 530 s; the per-epoch curve (no flip) gained +4.3 over the last fifth (64.3
-> 68.6) and +0.3 over the last four epochs. The 2-stack network at 20 x 100 steps reached 66.4 (b1,
docs/notes/regime_exploration_2.md). Per-epoch validation here uses the flip test (below); the three-seed bench
of the first version (2026-12-02, 58.5 min): random 71.55, transfer 78.25, frozen 34.50 on `lower` (BUILD_NOTES).
"""

from configs.demo import get_config as demo_config

NUM_TRAIN = 12000   # generated training people: 3,360 x 16 = 53,760 crops, each person seen ~4.5 times
NUM_VAL = 250


def get_config():
    c = demo_config()
    c.name = "embedded_bench"
    c.joints = "lower"              # the random arm's target; the KPTransfer source is `upper`
    c.model.num_stacks = 1
    c.train.steps_per_epoch = 120
    # 36 epochs: the cosine anneals over the first 80 % (28.8 epochs, a little more than the 28-epoch cosine of the
    # first version of this setting) to lr/100 (1e-4, a working Adam rate), held for the last 7.2 epochs. The hold
    # is the flatness test of issue 8: what more training at a small rate still gains (BUILD_NOTES,
    # "Learning-rate schedules").
    c.train.epochs = 36
    c.train.cosine_fraction = 0.8
    c.train.cosine_floor = 0.01
    c.train.skeleton_images = 0
    # Per-epoch validation with the flip test (HRNet convention, as every reported figure): the bench's finals and
    # curves are these epochs. ~+1.5 s an epoch (15 vs 13.5 s on 2 idle cores).
    c.train.flip_test = True
    return c


def use_first_schedule(c):
    """The schedule of the setting's first version (28 epochs, cosine to 0 at the last step), with which the FPD
    and PBN experiments' recorded results were measured (2026-12-02 .. 12-06): their configs keep it so that
    their README figures stay reproducible."""
    c.train.epochs = 28
    c.train.cosine_fraction = 1.0
    c.train.cosine_floor = 0.0
    return c

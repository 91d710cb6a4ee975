"""Part-Based Branching Network on the embedded data set: the demo network's stem and first stack (64 features)
as the shared trunk, one 1-stack x 32 branch per joint group. Groups: the 5 MI groups of the embedded training
people (the same 5 as on real MPII, README), inline; `--config.model.groups_file=DIR/groups.json` replaces them.

The experiment `python -m kpt_tf.experiments.pbn --config configs/pbn_embedded.py --workdir W` reads the
`experiment` section: it computes the MI and body groupings of its own training data, and trains PBN with each
and a plain hourglass of the same trainable parameter count (within 3 %) on the same schedule and seeds.
"""

from configs.base import add_section
from configs.embedded_bench import get_config as bench_config
from configs.embedded_bench import use_first_schedule
from configs.pbn_hg_mpii import MPII_MI_GROUPS_5, pbn_model


def get_config():
    # the benchmark setting (issue 8) with the schedule its recorded results were measured with
    c = use_first_schedule(bench_config())
    c.name = "pbn_embedded"
    c.joints = "all"
    c.model = pbn_model(c.model, 1, 1, 32, MPII_MI_GROUPS_5,
                        "kpt_tf.grouping on the embedded training people, --groups 5 --method mi")
    c.train.skeleton_images = 0
    add_section(c, "experiment", dict(
        seeds=(0, 1, 2),
        num_groups=5,
        arms=("pbn_mi", "pbn_body", "hourglass"),
        # the plain hourglass: the trunk's stacks + the branch stacks, width solved for the PBN's parameter count
        param_tolerance=0.03,
        grouping_bins=6,
    ))
    add_section(c, "quick", dict(
        channels=24, branch_channels=16, depth=2, input_size=64, batch_size=8, steps_per_epoch=6, epochs=2,
        seeds=(0,), num_groups=3))
    return c

"""Part-Based Branching Network on real MPII: the first 6 stacks of an 8 x 256 hourglass as the shared trunk,
then per joint group 2 hourglass stacks of 128 features (27.2 M trainable parameters against hg8_256's 25.4 M),
bearpaw's schedule (hg8_256).

The groups are the 5 MI groups of the MPII training annotations, computed by

    python -m kpt_tf.grouping --data ../shared/mpii/mpii_annotations.json.gz --groups 5 --out runs/groups_mpii

and written inline so the config builds without the file; `--config.model.groups_file=runs/groups_mpii/groups.json`
(any groups.json, e.g. the body grouping: `--method body`) replaces them.
"""

from configs.hg8_256 import get_config as hg8_config
from kpt_tf.models import model_section

MPII_MI_GROUPS_5 = (
    {"name": "ank_kne", "joints": ("right_ankle", "right_knee", "left_knee", "left_ankle")},
    {"name": "hip_pelv", "joints": ("right_hip", "left_hip", "pelvis")},
    {"name": "thor_neck_head_sho", "joints": ("thorax", "upper_neck", "head_top", "right_shoulder", "left_shoulder")},
    {"name": "rwri_relb", "joints": ("right_wrist", "right_elbow")},
    {"name": "lelb_lwri", "joints": ("left_elbow", "left_wrist")},
)


def pbn_model(hourglass_model, trunk_stacks: int, branch_stacks: int, branch_channels: int, groups,
              groups_source: str):
    """The model section of a PBN with an hourglass model section's stem, width and depth, its stacks split into a
    trunk and per-group branches (every other key: the PBN's declared default)."""
    return model_section("pbn", like=hourglass_model, trunk_stacks=trunk_stacks, branch_stacks=branch_stacks,
                         branch_channels=branch_channels, groups=[dict(g, joints=list(g["joints"])) for g in groups],
                         groups_source=groups_source)


def get_config():
    c = hg8_config()
    c.name = "pbn_hg_mpii"
    c.model = pbn_model(c.model, 6, 2, 128, MPII_MI_GROUPS_5,
                        "kpt_tf.grouping on mpii_annotations.json.gz, --groups 5 --method mi")
    return c

"""Part-Based Branching Network (Tang & Wu, "Does Learning Specific Features for Related Parts Help Human Pose
Estimation?", CVPR 2019) on the stacked hourglass: a shared trunk (the hourglass' stem and first
`trunk_stacks` stacks, each with an all-joint head: intermediate supervision) and one branch per joint group
(its own `branch_stacks` hourglass stacks of `branch_channels` features, fed the trunk's re-injected features)
whose heads predict only that group's joints.

Outputs follow the contract of every kpt_tf network (`kpt_tf.models.outputs`): one heatmap tensor per
supervised stage over the subset's joints in the subset's order -- the trunk's stacks first, then, for each
branch stack b, the groups' heads of stack b reassembled into subset order (`stage{k}_joints`). So training,
the codec, evaluation, export, serving and transfer need nothing PBN-specific.

Layer names: the trunk's are the hourglass' (`stem_*`, `hg{s}_*`, `stack{s}_*`, `head{s}`, `reinject{s}_*`), so
a trained plain hourglass transfers into the trunk by name; a branch's are `branch_<group>_...`
(`branch_<group>_in` 1x1 width change when branch_channels differ, `branch_<group>_hg{b}_*`,
`branch_<group>_stack{b}_*`, `branch_<group>_head{b}`, `branch_<group>_reinject{b}_*`), where <group> is the
group's name (`kpt_tf.grouping.clustering.group_name`: made from its own joints), so a branch's names do not
depend on the other groups.

Config (`model.name = "pbn"`, declared in `SECTION` below): the hourglass' keys but `num_stacks` (stem, width,
depth, input), trunk_stacks, branch_stacks, branch_channels, groups (an inline list of {"name", "joints"} dicts or
of joint-name lists) or groups_file (a groups.json, which then replaces `groups` in the saved config). Groups are
restricted to the subset's joints (empty ones dropped); every subset joint must be in exactly one group.
"""

from __future__ import annotations

import re

import keras
from keras import layers, ops

from kpt_tf.joints import JointSubset
from kpt_tf.models import blocks, hourglass
from kpt_tf.models.hourglass import OUTPUT_STRIDE, build_stack, build_stem, check_input, check_sizes
from kpt_tf.models.hourglass import joint_layout as trunk_joint_layout
from kpt_tf.models.registry import Architecture, Branch, register
from kpt_tf.registry import ConfigSection

_BRANCH_HEAD = re.compile(r"^branch_\w+_head\d+$")
_BRANCH_REINJECT_HEATMAPS = re.compile(r"^branch_\w+_reinject\d+_heatmaps$")


@keras.saving.register_keras_serializable(package="kpt_tf")
class ReassembleJoints(layers.Layer):
    """Concatenated group heatmaps [B, h, w, J] (groups' joints in group order) -> the subset's joint order."""

    def __init__(self, order, **kwargs):
        super().__init__(**kwargs)
        self.order = [int(i) for i in order]

    def call(self, heatmaps):
        return ops.take(heatmaps, self.order, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "order": self.order}


def resolve_groups(spec, joints: JointSubset) -> list[tuple[str, list[str]]]:
    """(name, joint names in subset order) per group, restricted to `joints`; refuses overlaps and gaps."""
    from kpt_tf.grouping.clustering import group_name
    from kpt_tf.grouping.grouping import load_groups

    if not spec:
        raise ValueError("config model.groups is empty: give a groups.json (python -m kpt_tf.grouping) or a list "
                         "of joint-name lists")
    groups = load_groups(spec)
    names = list(joints.names)
    seen: dict[str, str] = {}
    out = []
    for name, members in groups:
        for j in members:
            JointSubset.parse(j)   # refuses an unknown joint name with its own message
            if j in seen:
                raise ValueError(f"config model.groups: joint {j} is in two groups ({seen[j]}, {name})")
            seen[j] = name
        kept = [j for j in names if j in members]
        if kept:   # a group cut down to the subset is named after what is left of it
            out.append((name if len(kept) == len(members) else group_name(kept), kept))
    missing = [j for j in names if j not in seen]
    if missing:
        raise ValueError(f"config model.groups: the joints {missing} of {joints.name} are in no group")
    if len({n for n, _ in out}) != len(out):
        raise ValueError(f"config model.groups: two groups have the same name ({[n for n, _ in out]})")
    return out


def build_pbn(joints: JointSubset, groups, trunk_stacks: int, branch_stacks: int, channels: int,
              branch_channels: int, depth: int = 4, num_blocks: int = 1, input_size: int = 256,
              stem: str = "bearpaw", input_mean=(0.0, 0.0, 0.0), synchronized_bn: bool = False,
              name: str = "pbn", input_std=(1.0, 1.0, 1.0)) -> keras.Model:
    check_sizes(dict(trunk_stacks=trunk_stacks, branch_stacks=branch_stacks, channels=channels,
                     branch_channels=branch_channels, depth=depth, num_blocks=num_blocks, input_size=input_size),
                "build_pbn: ")
    groups = resolve_groups(groups, joints)
    names = list(joints.names)
    num_joints = len(names)

    image = keras.Input(shape=(input_size, input_size, 3), dtype="float32", name="image")
    x = build_stem(image, channels, stem, input_mean, synchronized_bn, input_std)
    stages = []
    for s in range(trunk_stacks):       # the last trunk stack re-injects too: the branches start from it
        x, score = build_stack(x, f"hg{s}", f"stack{s}", f"head{s}", f"reinject{s}", num_joints, depth, num_blocks,
                               synchronized_bn, reinject=True)
        stages.append(score)

    group_outputs = []   # [group][branch stack] heatmaps of the group's joints
    for group, members in groups:
        p = f"branch_{group}"
        y = x if branch_channels == channels else blocks.conv(branch_channels, 1, channels, f"{p}_in")(x)
        outs = []
        for b in range(branch_stacks):
            y, score = build_stack(y, f"{p}_hg{b}", f"{p}_stack{b}", f"{p}_head{b}", f"{p}_reinject{b}",
                                   len(members), depth, num_blocks, synchronized_bn, reinject=b < branch_stacks - 1)
            outs.append(score)
        group_outputs.append(outs)
    concatenated_order = [names.index(j) for _, members in groups for j in members]
    order = [concatenated_order.index(k) for k in range(num_joints)]
    for b in range(branch_stacks):
        k = trunk_stacks + b
        per_group = [outs[b] for outs in group_outputs]
        merged = (layers.Concatenate(axis=-1, name=f"stage{k}_concat", dtype="float32")(per_group)
                  if len(per_group) > 1 else per_group[0])
        stages.append(ReassembleJoints(order, name=f"stage{k}_joints", dtype="float32")(merged))
    return keras.Model(inputs=image, outputs=stages, name=name)


def branch_width(model_config) -> int:
    """`model.branch_channels`, 0 meaning the trunk's width (`model.channels`)."""
    return int(model_config.branch_channels) or int(model_config.channels)


def check_section(m) -> None:
    """The PBN's `config.model`, filled: the sizes and the input normalisation (the groups are checked against the
    joint subset when the network is built)."""
    if isinstance(m.branch_channels, bool) or not isinstance(m.branch_channels, int) or m.branch_channels < 0:
        raise ValueError(f"config model.branch_channels must be an int >= 0 (0: model.channels), got "
                         f"{m.branch_channels!r}")
    check_sizes({**{k: m[k] for k in ("trunk_stacks", "branch_stacks", "channels", "depth", "num_blocks",
                                      "input_size")}, "branch_channels": branch_width(m)}, "config model.")
    check_input(m.stem, tuple(m.input_mean), tuple(m.input_std), "config model.")


# `config.model` of a PBN (`model.name = "pbn"`), declared once: the hourglass' keys (their defaults are the
# hourglass') with its stacks split into a trunk and per-group branches.
SECTION = ConfigSection("model", "architecture pbn", dict(
    {k: v for k, v in hourglass.SECTION.defaults.items() if k != "num_stacks"},
    name="pbn",
    trunk_stacks=1,              # the hourglass' first stacks, shared, each with an all-joint head
    branch_stacks=1,             # hourglass stacks of every branch
    branch_channels=0,           # features of the branches' stacks; 0: model.channels
    groups=(),                   # [{"name", "joints"}] or joint-name lists, inline (resolve_config writes them here)
    groups_file="",              # a groups.json to use instead (python -m kpt_tf.grouping --out)
    groups_source="",            # where the groups came from (a note; the groups file once inlined)
), check=check_section)


def build_from_config(model_config, joints, synchronized_bn: bool = False) -> keras.Model:
    m = model_config
    return build_pbn(JointSubset.parse(joints), m.groups, trunk_stacks=int(m.trunk_stacks),
                     branch_stacks=int(m.branch_stacks), channels=int(m.channels), branch_channels=branch_width(m),
                     depth=int(m.depth), num_blocks=int(m.num_blocks), input_size=int(m.input_size),
                     stem=str(m.stem), input_mean=tuple(m.input_mean), input_std=tuple(m.input_std),
                     synchronized_bn=synchronized_bn)


def resolve_config(model_config):
    """`model.groups_file` (a groups.json) replaces `model.groups` by the inline list it holds and is
    recorded as `groups_source`, so a workdir's config.json builds its network without the file."""
    from kpt_tf.grouping.grouping import load_groups

    path = str(model_config.groups_file or "")
    if path:
        inline = [{"name": n, "joints": list(j)} for n, j in load_groups(path)]
        with model_config.ignore_type():
            model_config.groups = inline
        model_config.groups_file = ""
        model_config.groups_source = path
    return model_config


def joint_layout(layer_name: str) -> dict | None:
    """The trunk's heads index every subset joint (as the hourglass'); a branch's heads index its group's joints
    only, marked `"joints": "group"` so transfer never maps them by subset position."""
    if _BRANCH_HEAD.match(layer_name):
        return {"kernel": 3, "bias": 0, "joints": "group"}
    if _BRANCH_REINJECT_HEATMAPS.match(layer_name):
        return {"kernel": 2, "bias": None, "joints": "group"}
    return trunk_joint_layout(layer_name)


_HOURGLASS_STACK_LAYER = re.compile(r"^(hg|stack|head|reinject)(\d+)(?=_|$)")


def branch_renaming(group: str, branch_stacks: int, source_layers) -> dict[str, str]:
    """Layers of a plain hourglass (trained on the group's joints) that initialise branch `group`: its last
    `branch_stacks` stacks, in order, onto the branch's stacks (`hg{S-B+b}_*` -> `branch_<group>_hg{b}_*`, the same
    for `stack`, `head` and `reinject`); its stem and first stacks are the trunk's part and are not used."""
    stacks = {int(m.group(2)) for name in source_layers if (m := _HOURGLASS_STACK_LAYER.match(name))
              and m.group(1) == "head"}
    if not stacks:
        raise ValueError("the source has no hourglass stacks (no head{s} layer): a branch is initialised from a "
                         "plain hourglass")
    first = max(stacks) + 1 - branch_stacks
    if first < 0:
        raise ValueError(f"the source has {max(stacks) + 1} stack(s); branch {group} has {branch_stacks}")
    out = {}
    for name in source_layers:
        m = _HOURGLASS_STACK_LAYER.match(name)
        if m and int(m.group(2)) >= first:
            out[name] = f"branch_{group}_{m.group(1)}{int(m.group(2)) - first}{name[m.end():]}"
    return out


def branches(model_config, joints) -> list[Branch]:
    groups = resolve_groups(resolve_config(model_config).groups, JointSubset.parse(joints))
    stacks = int(model_config.branch_stacks)
    return [Branch(name=g, joints=tuple(members), layer_prefix=f"branch_{g}_",
                   rename=lambda layers, g=g: branch_renaming(g, stacks, layers)) for g, members in groups]


register(Architecture(name="pbn", section=SECTION, build=build_from_config,
                      output_stride=lambda model_config: OUTPUT_STRIDE, joint_layout=joint_layout,
                      resolve_config=resolve_config, branches=branches))

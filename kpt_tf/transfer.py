r"""KPTransfer weight transfer between joint subsets, matched by layer-path name.

`python -m kpt_tf.transfer --source SAVEDMODEL_OR_.keras --target_config configs/X.py --out W
 [--freeze] [--map_heads] [--allow_partial] [--source_joints upper] [--branch_source BRANCH=PATH ...]`

Reads the source's weights by name (an exported SavedModel from its checkpoint alone, never executing its
graph: `tf.train.load_checkpoint` on `variables/`; a `.keras` file through Keras in safe mode), builds the
target network for the target config's joint subset, and copies every weight whose name and shape match.
Keras's own `load_weights(skip_mismatch=True)` is not used: it matches `.weights.h5` entries by order, not
name, and was measured to load another layer's kernel silently when the topology differs.

The joint-dependent layers (`head{s}` and `reinject{s}_heatmaps`; their names do not depend on the
subset, their channels do) are never copied blindly, even when shapes agree (`left` -> `right` both have
6 channels but mean different joints). With `--map_heads` the channels of the joints both subsets share
are carried over by joint name: the head kernel's output columns and biases, and the re-injection
kernel's input channels; new joints keep their fresh initialisation.

Refused, with nothing written: an unreadable source; a transfer where nothing but heads would be copied;
architectures that differ beyond the heads (unless `--allow_partial`).
The result is a workdir (`config.json`, `init.keras`, `transfer_report.json`) that `kpt_tf.train`
continues from; `--freeze` marks every copied body layer non-trainable (frozen weight extraction: heads still train).

`--branch_source BRANCH=PATH` (part-based targets, e.g. the PBN): the branch is initialised from a plain network
trained on its group's joints; the architecture says which source layers become which branch layers (the PBN:
the source's last stacks become the branch's stacks, `hg1_*` -> `branch_<group>_hg0_*`), and the report lists the
renaming. Combined with `--source`, the trunk comes from the source by name and each branch from its own.

Across keypoint layouts (an MPII-trained source into a COCO target and back): the trunk copies by layer name as
above, and with `--map_heads` the heads take the channels of the joints both layouts name alike (MPII and COCO share
the 12 limb joints); the target's other joints keep their fresh initialisation. The source's layout is what its file
records (an export's metadata, a workdir's config.json), the target's what its config's joints and records name
(`coco17:all`, as kpt_tf.train reads them); the report lists the mapped, new and dropped joints. A transfer
between layouts whose joint subsets share no joint is refused.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from kpt_tf import workdir as wd
from kpt_tf.joints import JointSubset
from kpt_tf.models import DEFAULT_ARCHITECTURE, architecture, architecture_name
from kpt_tf.models.weights import EVERY_DIFFERENCE, EXTRA, SHAPE, CopyRefused, copy_by_name, variables_by_name
from kpt_tf.trained import StoredWeights, read_weights


class TransferError(ValueError):
    """A transfer that must not happen (message says why); nothing has been written."""


def read_source(path, joints: str | None = None) -> StoredWeights:
    """Weights by layer-path name from an exported SavedModel, a training workdir or a `.keras` file.

    The source's joint subset comes from `joints`, else from what the source records (the export's metadata: its
    joint names in its `layout`; or the config beside the `.keras` file: its `joints`, prefixed with the layout
    unless MPII's). `joints` is read against the layout the source records (mpii16 when it records none, unless
    prefixed: `coco17:all`).
    """
    path = Path(path)
    if not path.exists():
        raise TransferError(f"source {path}: does not exist")
    try:   # untrusted: a SavedModel's variables are read from its checkpoint, its graph is never executed
        source = read_weights(path)
    except Exception as e:  # anything that stops reading: say which file and why
        raise TransferError(f"source {path}: cannot be read as a SavedModel, workdir or .keras model "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    if not source.weights:
        raise TransferError(f"source {path}: holds no variables")
    if joints:
        try:
            source.joints = JointSubset.parse(joints, None if source.joints is None else source.joints.layout)
        except ValueError as e:
            raise TransferError(f"source {path}: --source_joints {joints!r}: {e}") from None
    return source


def target_joints_of(config) -> JointSubset:
    """The joints of the network `config` trains, as kpt_tf.train reads them (`config_subset`): its `joints`
    against the keypoint layout of its records, so the transferred heads are the ones training builds. A config
    without a data directory yet: its `joints` alone (a `coco17:` prefix names the layout, else mpii16)."""
    from kpt_tf.data.records import config_subset

    try:
        return config_subset(config)
    except ValueError as e:
        raise TransferError(f"target config joints {config.joints!r}: {e}") from None


@dataclasses.dataclass
class TransferReport:
    copied: list = dataclasses.field(default_factory=list)            # (name, params)
    copied_in_part: list = dataclasses.field(default_factory=list)    # (name, params copied, params total)
    shape_mismatched: list = dataclasses.field(default_factory=list)  # (name, source shape, target shape)
    heads_not_mapped: list = dataclasses.field(default_factory=list)  # (name, params)
    only_in_source: list = dataclasses.field(default_factory=list)    # (name, params)
    only_in_target: list = dataclasses.field(default_factory=list)    # (name, params)
    shared_joints: list = dataclasses.field(default_factory=list)
    frozen_layers: list = dataclasses.field(default_factory=list)
    renamed_layers: dict = dataclasses.field(default_factory=dict)    # source layer -> target layer (branches)
    # The heads by joint name (`JointSubset.name_mapping`), in the target's order: the joints whose channels were
    # carried over, the target's joints whose channels start fresh, the source's joints not carried over. Without
    # head mapping nothing is carried: every target joint is new, every source joint dropped.
    source_layout: str | None = None      # None: the source records no joints
    target_layout: str | None = None
    mapped_joints: list = dataclasses.field(default_factory=list)
    new_joints: list = dataclasses.field(default_factory=list)
    dropped_joints: list = dataclasses.field(default_factory=list)

    def note_joints(self, source_joints: JointSubset | None, target_joints: JointSubset, carried: bool) -> None:
        """Records the layouts and which joints' head channels the transfer carries over (`carried`), starts
        fresh and drops."""
        self.target_layout = target_joints.layout.name
        if source_joints is None:
            self.new_joints = list(target_joints.names)
            return
        self.source_layout = source_joints.layout.name
        if not carried:
            self.new_joints, self.dropped_joints = list(target_joints.names), list(source_joints.names)
            return
        mapping = source_joints.name_mapping(target_joints)
        self.mapped_joints, self.new_joints, self.dropped_joints = (
            list(mapping.mapped), list(mapping.new), list(mapping.dropped))

    def params(self, field: str) -> int:
        rows = getattr(self, field)
        return int(sum(r[1] for r in rows)) if field != "shape_mismatched" else int(
            sum(np.prod(r[2]) for r in rows))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["params"] = {f: self.params(f) for f in ("copied", "copied_in_part", "shape_mismatched",
                                                    "heads_not_mapped", "only_in_source", "only_in_target")}
        return d

    def text(self) -> str:
        lines = ["weight transfer report (by layer-path name)",
                 f"  {'category':<18}{'weights':>9}{'parameters':>14}"]
        for f in ("copied", "copied_in_part", "shape_mismatched", "heads_not_mapped", "only_in_source",
                  "only_in_target"):
            lines.append(f"  {f:<18}{len(getattr(self, f)):>9}{self.params(f):>14,}")
        if self.source_layout is not None:
            lines.append(f"  keypoint layouts: {self.source_layout} -> {self.target_layout}")
        for label, joints in (("head channels carried over by joint name", self.mapped_joints),
                              ("new joints (fresh head channels)", self.new_joints),
                              ("dropped joints (source only)", self.dropped_joints)):
            if joints:
                lines.append(f"  {label} ({len(joints)}): {', '.join(joints)}")
        for f in ("shape_mismatched", "only_in_source", "only_in_target"):
            for row in getattr(self, f)[:8]:
                lines.append(f"    {f}: {row[0]} {row[1:] if f == 'shape_mismatched' else ''}".rstrip())
        if self.frozen_layers:
            lines.append(f"  frozen layers (non-trainable): {len(self.frozen_layers)}")
        if self.renamed_layers:   # the heads show the stack mapping; the json report has every layer
            heads = [f"{s} -> {t}" for s, t in self.renamed_layers.items() if s.startswith("head")]
            lines.append(f"  source layers renamed into the branch: {len(self.renamed_layers)} "
                         f"({', '.join(heads)}, and each stack's other layers alike)")
        return "\n".join(lines)


def transfer_into(net, source: StoredWeights, target_joints: JointSubset, map_heads: bool = False,
                  freeze: bool = False, allow_partial: bool = False,
                  architecture_of_net: str = DEFAULT_ARCHITECTURE, initialised_elsewhere=()) -> TransferReport:
    """Copy matching weights from `source` into the freshly built `net` (in place) and report.

    The joint-dependent layers are the ones the architecture names (`Architecture.joint_layout`).
    Raises TransferError (before touching `net`) for the refusals listed in the module docstring.
    `initialised_elsewhere`: layer-name prefixes (branches with their own source) whose absence from this source
    is not a difference of architectures.
    """
    layout_of = architecture(architecture_of_net).joint_layout
    if map_heads and source.joints is None:
        raise TransferError(f"--map_heads needs the source's joints: {source.description} does not record "
                            "them; pass --source_joints")
    _check_layouts_meet(source, target_joints)
    try:   # the body; the heads are set aside (`skip`) and take their channels by joint name below
        body = copy_by_name(net, source.weights, source.description, refuse=() if allow_partial else EVERY_DIFFERENCE,
                            skip=lambda layer_name: layout_of(layer_name) is not None,
                            may_lack=tuple(initialised_elsewhere), apply=False)
    except CopyRefused as e:
        if e.difference == "nothing":
            raise TransferError(f"nothing but heads would be copied from {source.description}: no weight of the "
                                "network body matches by name and shape (another architecture?)") from None
        raise TransferError(f"architectures differ beyond the heads: {e}; pass --allow_partial to copy what "
                            "matches anyway") from None
    report = TransferReport(copied=list(body.copied), shape_mismatched=list(body.shape_mismatched),
                            only_in_target=list(body.only_in_target), only_in_source=list(body.only_in_source))
    assignments = list(body.assignments)
    if map_heads:
        report.shared_joints = list(source.joints.name_mapping(target_joints).mapped)
    report.note_joints(source.joints, target_joints, carried=map_heads)
    assignments += _head_assignments(body.skipped, source.weights, net, layout_of, source.joints, target_joints,
                                     report, map_channels=map_heads, group_heads=False)

    for variable, value in assignments:
        variable.assign(value)
    if freeze:
        # Frozen weight extraction: the transferred body is a fixed feature extractor; the joint-dependent
        # layers (heads, heatmap re-injection) always train, even when every channel was carried over.
        fully = {n.split("/")[0] for n, _ in report.copied}
        partly = {r[0].split("/")[0] for r in report.only_in_target}
        for layer in net.layers:
            if layer.weights and layer.name in fully and layer.name not in partly and layout_of(layer.name) is None:
                layer.trainable = False
                report.frozen_layers.append(layer.name)
    return report


def transfer_into_branch(net, source: StoredWeights, branch, allow_partial: bool = False,
                         architecture_of_net: str = DEFAULT_ARCHITECTURE, layout=None) -> TransferReport:
    """Initialise one branch of a part-based `net` (a `registry.Branch`) from a network trained on the branch's
    joints: the architecture's `branch.rename` says which source layer becomes which branch layer; weights then
    copy by the new name and shape, and the branch's heads take the channels of the joints both have, by name.
    `layout`: the keypoint layout of `net`'s joints (mpii16 when None), which the branch's joints are names of.

    Only the branch's layers are touched. Refused (TransferError, `net` untouched): a source without recorded
    joints or that the branch cannot take; nothing copied; shape mismatches or renamed layers the branch lacks
    (unless `allow_partial`)."""
    layout_of = architecture(architecture_of_net).joint_layout
    if source.joints is None:
        raise TransferError(f"branch {branch.name}: {source.description} does not record its joints")
    group_joints = JointSubset.parse(",".join(branch.joints), layout)
    _check_layouts_meet(source, group_joints)
    source_layers = {name.split("/")[0] for name in source.weights}
    try:
        renaming = branch.rename(source_layers)
    except ValueError as e:
        raise TransferError(f"branch {branch.name} from {source.description}: {e}") from None
    renamed = {}
    for name, value in source.weights.items():
        layer = name.split("/")[0]
        if layer in renaming:
            renamed[renaming[layer] + name[len(layer):]] = value
    try:   # the branch's layers only (its heads set aside, as in `transfer_into`); what it lacks stays fresh
        plan = copy_by_name(net, renamed, source.description, refuse=() if allow_partial else (SHAPE, EXTRA),
                            skip=lambda layer: (not layer.startswith(branch.layer_prefix)
                                                or layout_of(layer) is not None), apply=False)
    except CopyRefused as e:
        if e.difference == "nothing" and e.plan.shape_mismatched:    # the renamed stacks are another width
            raise TransferError(f"branch {branch.name}: the source's stacks differ from the branch's ({e.details}); "
                                f"nothing would be copied from {source.description}") from None
        if e.difference == "nothing":
            raise TransferError(f"branch {branch.name}: nothing would be copied from {source.description} (no "
                                "renamed weight matches the branch by name and shape)") from None
        raise TransferError(f"branch {branch.name}: the source's stacks differ from the branch's ({e.details}); "
                            "pass --allow_partial to copy what matches anyway") from None
    report = TransferReport(shared_joints=[j for j in branch.joints if j in source.joints.names],
                            copied=list(plan.copied), shape_mismatched=list(plan.shape_mismatched),
                            only_in_target=list(plan.only_in_target), only_in_source=list(plan.only_in_source))
    report.note_joints(source.joints, group_joints, carried=True)
    heads = [row for row in plan.skipped if row[0].startswith(branch.layer_prefix)]
    assignments = list(plan.assignments) + _head_assignments(
        heads, renamed, net, layout_of, source.joints, group_joints, report, map_channels=True, group_heads=True)
    for variable, value in assignments:
        variable.assign(value)
    report.renamed_layers = dict(sorted(renaming.items()))
    return report


def _check_layouts_meet(source: StoredWeights, target_joints: JointSubset) -> None:
    """Refuses a transfer between keypoint layouts whose subsets share no joint: no head channel could be carried
    over, which between data sets means the joints were written for the wrong one. (Within one layout, disjoint
    subsets such as `left` -> `right` are a plain body transfer and stay allowed.)"""
    if source.joints is None or source.joints.layout == target_joints.layout:
        return
    if not source.joints.name_mapping(target_joints).mapped:
        raise TransferError(
            f"the source's joints {source.joints.qualified_name} (layout {source.joints.layout.name}, "
            f"{source.description}) and the target's {target_joints.qualified_name} (layout "
            f"{target_joints.layout.name}) share no joint: nothing of the heads could move between the layouts")


def _head_assignments(rows, values, net, layout_of, source_joints, target_joints, report, map_channels: bool,
                      group_heads: bool):
    """The (variable, value) pairs for the joint-dependent weights `rows` (name, parameters) that `copy_by_name`
    set aside: each takes the channels of the joints source and target share, by name (when `map_channels`;
    a group head, whose channels are its group's joints, only when `group_heads`). Fills `report`."""
    variables = variables_by_name(net)
    assignments = []
    for name, n_params in rows:
        value = values.get(name)
        if value is None:
            report.only_in_target.append((name, n_params))
            continue
        layer_name, weight_name = name.split("/")[0], name.split("/")[-1]
        layout = layout_of(layer_name)
        mapped = None
        if map_channels and (group_heads or layout.get("joints") != "group"):
            mapped = _map_joint_channels(value, np.asarray(variables[name].numpy()), layout.get(weight_name),
                                         source_joints, target_joints)
        if mapped is None or mapped[1] == 0:
            report.heads_not_mapped.append((name, n_params))
            continue
        new_value, n_copied = mapped
        assignments.append((variables[name], new_value))
        if n_copied == n_params:
            report.copied.append((name, n_params))
        else:
            report.copied_in_part.append((name, n_copied, n_params))
    return assignments


def _map_joint_channels(source_value, target_value, axis, source_joints, target_joints):
    """The target value with the shared joints' slices (along `axis`) taken from the source, and how many
    parameters were copied; `axis` None: a joint-independent weight, copied whole when shapes agree.
    None when the source does not have the layout the joints imply."""
    source_value = np.asarray(source_value)
    if axis is None:
        return (source_value, source_value.size) if source_value.shape == target_value.shape else None
    other_axes = [d for i, d in enumerate(target_value.shape) if i != axis]
    if (source_value.ndim != target_value.ndim or source_value.shape[axis] != len(source_joints)
            or [d for i, d in enumerate(source_value.shape) if i != axis] != other_axes):
        return None
    out = np.array(target_value, copy=True)
    # By canonical joint name, so the channels meet across layouts too (an MPII head's wrists -> a COCO head's).
    mapping = source_joints.name_mapping(target_joints)
    for t, s in zip(mapping.target_channels, mapping.source_channels):
        np.moveaxis(out, axis, 0)[t] = np.moveaxis(source_value, axis, 0)[s]
    return out, int(np.prod(other_axes)) * len(mapping.mapped)


def transfer_to_workdir(source_path, target_config, out_dir, map_heads=False, freeze=False,
                        allow_partial=False, source_joints=None, verbose=True,
                        branch_sources=None) -> TransferReport:
    """`_transfer_to_workdir` holding `out_dir`'s lock (kpt_tf.ownership)."""
    from kpt_tf import ownership

    with ownership.owned(out_dir, "kpt_tf.transfer"):
        return _transfer_to_workdir(source_path, target_config, out_dir, map_heads, freeze, allow_partial,
                                    source_joints, verbose, branch_sources)


def _transfer_to_workdir(source_path, target_config, out_dir, map_heads=False, freeze=False,
                         allow_partial=False, source_joints=None, verbose=True,
                         branch_sources=None) -> TransferReport:
    """Build the target network, transfer, and write the workdir atomically (nothing on refusal).

    `source_path` (may be None when `branch_sources` is given) initialises the network by name;
    `branch_sources` ({branch name: path}) then initialises each named branch of a part-based target from a
    network trained on that branch's joints (`transfer_into_branch`). Returns the first transfer's report (the
    first branch's when there is no `source_path`); the workdir's report holds all of them."""
    from kpt_tf.models import build_net

    out_dir = Path(out_dir)
    wd.check_prepared_out(out_dir, "kpt_tf.transfer", None if source_path is None else str(source_path))
    branch_sources = dict(branch_sources or {})
    if source_path is None and not branch_sources:
        raise TransferError("nothing to transfer from: give a source or branch sources")
    target_joints = target_joints_of(target_config)
    arch = architecture_name(target_config)
    branches = {b.name: b for b in architecture(arch).branches(target_config.model, target_joints)}
    unknown = [g for g in branch_sources if g not in branches]
    if unknown:
        raise TransferError(f"branch source(s) for {unknown}: the target has " +
                            (f"the branches {sorted(branches)}" if branches else f"no branches ({arch})"))
    source = read_source(source_path, source_joints) if source_path is not None else None
    net = build_net(target_config, target_joints)
    report = (transfer_into(net, source, target_joints, map_heads=map_heads, freeze=freeze,
                            allow_partial=allow_partial, architecture_of_net=arch,
                            initialised_elsewhere=[branches[g].layer_prefix for g in branch_sources])
              if source is not None else None)
    branch_reports = {}
    for group, path in branch_sources.items():
        branch_reports[group] = (str(path), transfer_into_branch(
            net, read_source(path), branches[group], allow_partial=allow_partial, architecture_of_net=arch,
            layout=target_joints.layout))
    with wd.staged(out_dir, ".transfer-") as staging:
        net.save(staging / wd.INIT_MODEL)
        wd.save_config(target_config, staging)
        payload = report.to_dict() if report is not None else {}
        payload.update(source=None if source_path is None else str(source_path),
                       source_joints=list(source.joints.names) if source is not None and source.joints else None,
                       target_joints=list(target_joints.names), map_heads=map_heads, freeze=freeze)
        if branch_reports:
            payload["branches"] = {g: {"source": p, **r.to_dict()} for g, (p, r) in branch_reports.items()}
        text = [report.text()] if report is not None else []
        text += [f"branch {g} from {p}:\n" + r.text() for g, (p, r) in branch_reports.items()]
        (staging / wd.TRANSFER_REPORT_JSON).write_text(json.dumps(payload, indent=1))
        (staging / wd.TRANSFER_REPORT_TEXT).write_text("\n".join(text) + "\n")
    if verbose:
        print("\n".join(text))
    return report if report is not None else next(iter(branch_reports.values()))[1]


def define_flags():
    """CLI flags (defined only when run as a program, so importing this module defines none)."""
    flags.DEFINE_string("source", None, "Exported SavedModel directory or .keras model of the source.")
    config_flags.DEFINE_config_file("target_config", None, "Config of the target network (joints etc.).")
    flags.DEFINE_string("out", None, "Workdir to create for the target; kpt_tf.train continues from it.")
    flags.DEFINE_bool("freeze", False, "Make every copied layer non-trainable (frozen weight extraction).")
    flags.DEFINE_bool("map_heads", False, "Carry shared joints' head channels over by joint name.")
    flags.DEFINE_bool("allow_partial", False, "Copy what matches even if the bodies differ.")
    flags.DEFINE_string("source_joints", None, "The source's joint subset, if not recorded (a `coco17:` prefix "
                        "names its keypoint layout; read against the layout the source records, else mpii16).")
    flags.DEFINE_multi_string("branch_source", [], "BRANCH=PATH: initialise a part-based target's branch from a "
                              "network trained on its joints (repeatable; see the PBN's branch names in its config).")


def main(argv):
    del argv
    f = flags.FLAGS
    if not (f.source or f.branch_source) or not f.out or f.target_config is None:
        raise app.UsageError("--source (or --branch_source), --target_config and --out are required")
    malformed = [b for b in f.branch_source if "=" not in b or not b.split("=", 1)[0] or not b.split("=", 1)[1]]
    if malformed:
        raise app.UsageError(f"--branch_source takes BRANCH=PATH, got {malformed}")
    try:
        transfer_to_workdir(f.source, f.target_config, f.out, map_heads=f.map_heads, freeze=f.freeze,
                            allow_partial=f.allow_partial, source_joints=f.source_joints,
                            branch_sources=dict(b.split("=", 1) for b in f.branch_source))
    except TransferError as e:
        raise TransferError(f"transfer refused: {e}") from None
    print(f"workdir ready: {f.out} (continue with python -m kpt_tf.train --config ... --workdir {f.out})")


if __name__ == "__main__":
    define_flags()
    from kpt_tf import cli

    cli.run(main, "kpt_tf.transfer")

r"""KPTransfer weight transfer between joint subsets, matched by layer-path name.

`python -m kpt_tf.transfer --source SAVEDMODEL_OR_.keras --target_config configs/X.py --out W
 [--freeze] [--map_heads] [--allow_partial] [--source_joints upper]`

Reads the source's weights by name (a SavedModel exported by kpt_tf.export keeps `stem_conv/kernel:0`;
a `.keras` file through Keras), builds the target network for the target config's joint subset, and
copies every weight whose name and shape match. Keras's own `load_weights(skip_mismatch=True)` is not
used: it matches `.weights.h5` entries by order, not name, and was measured to load another layer's
kernel silently when the topology differs.

The joint-dependent layers (`head{s}` and `reinject{s}_heatmaps`; their names do not depend on the
subset, their channels do) are never copied blindly, even when shapes agree (`left` -> `right` both have
6 channels but mean different joints). With `--map_heads` the channels of the joints both subsets share
are carried over by joint name: the head kernel's output columns and biases, and the re-injection
kernel's input channels; new joints keep their fresh initialisation.

Refused, with nothing written: an unreadable source; a transfer where nothing but heads would be copied;
architectures that differ beyond the heads (unless `--allow_partial`).
The result is a workdir (`config.json`, `init.keras`, `transfer_report.json`) that `kpt_tf.train`
continues from; `--freeze` marks every copied body layer non-trainable (frozen weight extraction: heads still train).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from kpt_tf.joints import JointSubset

EXPORT_METADATA = "assets.extra/kpt_tf.json"  # written by kpt_tf.export beside the SavedModel
# Layers whose channels follow the joint subset; everything else has subset-independent shapes.
_HEAD_LAYER = re.compile(r"^(head\d+|reinject\d+_heatmaps)$")


class TransferError(ValueError):
    """A transfer that must not happen (message says why); nothing has been written."""


@dataclasses.dataclass
class SourceWeights:
    weights: dict[str, np.ndarray]     # "layer/weight" -> value
    joints: JointSubset | None         # the source head's joints, when known
    description: str


def _strip(name: str) -> str:
    return name.rsplit(":", 1)[0]


def is_head_layer(layer_name: str) -> bool:
    return bool(_HEAD_LAYER.match(layer_name))


def read_source(path, joints: str | None = None) -> SourceWeights:
    """Weights by layer-path name from an exported SavedModel directory or a `.keras` file.

    The source's joint subset comes from `joints`, else from the export's metadata, else from the
    `config.json` of the workdir holding the `.keras` file.
    """
    path = Path(path)
    if not path.exists():
        raise TransferError(f"source {path}: does not exist")
    known = None
    try:
        if path.is_dir():
            import tensorflow as tf

            loaded = tf.saved_model.load(str(path))
            weights = {_strip(v.name): v.numpy() for v in loaded.variables}
            meta = path / EXPORT_METADATA
            if meta.is_file():
                known = json.loads(meta.read_text()).get("joints")
            kind = "SavedModel"
        else:
            import keras

            model = keras.saving.load_model(path, compile=False)
            weights = {v.path: np.asarray(v.numpy()) for v in model.weights}
            config = path.parent / "config.json"
            if config.is_file():
                known = json.loads(config.read_text()).get("joints")
            kind = ".keras model"
    except TransferError:
        raise
    except Exception as e:  # anything that stops reading: say which file and why
        raise TransferError(f"source {path}: cannot be read as a SavedModel or .keras model ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''})") from e
    if not weights:
        raise TransferError(f"source {path}: holds no variables")
    spec = joints or known
    return SourceWeights(weights, JointSubset.parse(spec) if spec else None, f"{kind} {path}")


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
        if self.shared_joints:
            lines.append(f"  head channels carried over for: {', '.join(self.shared_joints)}")
        for f in ("shape_mismatched", "only_in_source", "only_in_target"):
            for row in getattr(self, f)[:8]:
                lines.append(f"    {f}: {row[0]} {row[1:] if f == 'shape_mismatched' else ''}".rstrip())
        if self.frozen_layers:
            lines.append(f"  frozen layers (non-trainable): {len(self.frozen_layers)}")
        return "\n".join(lines)


def transfer_into(net, source: SourceWeights, target_joints: JointSubset, map_heads: bool = False,
                  freeze: bool = False, allow_partial: bool = False) -> TransferReport:
    """Copy matching weights from `source` into the freshly built `net` (in place) and report.

    Raises TransferError (before touching `net`) for the refusals listed in the module docstring.
    """
    report = TransferReport()
    plan: list[tuple] = []   # (variable, value) assignments, applied only once every check has passed
    layer_of = {}
    for layer in net.layers:
        for v in layer.weights:
            layer_of[v.path] = layer
    target_names = set(layer_of)
    if map_heads and source.joints is None:
        raise TransferError(f"--map_heads needs the source's joints: {source.description} does not record "
                            "them; pass --source_joints")
    shared = []
    if map_heads:
        shared = [n for n in target_joints.names if n in source.joints.names]
        report.shared_joints = shared
    for layer in net.layers:
        for v in layer.weights:
            name, target_shape = v.path, tuple(v.shape)
            n_params = int(np.prod(target_shape))
            value = source.weights.get(name)
            if value is None:
                report.only_in_target.append((name, n_params))
                continue
            if is_head_layer(layer.name):
                mapped = _map_head_weight(layer.name, name, value, np.asarray(v.numpy()), source.joints,
                                          target_joints) if map_heads else None
                if mapped is None:
                    report.heads_not_mapped.append((name, n_params))
                else:
                    new_value, n_copied = mapped
                    plan.append((v, new_value))
                    if n_copied == n_params:
                        report.copied.append((name, n_params))
                    elif n_copied:
                        report.copied_in_part.append((name, n_copied, n_params))
                    else:
                        report.heads_not_mapped.append((name, n_params))
                continue
            if tuple(value.shape) != target_shape:
                report.shape_mismatched.append((name, tuple(value.shape), target_shape))
                continue
            plan.append((v, value))
            report.copied.append((name, n_params))
    report.only_in_source = sorted((n, int(np.prod(w.shape))) for n, w in source.weights.items()
                                   if n not in target_names and not n.startswith(("seed_generator", "optimizer")))

    body_copied = [n for n, _ in report.copied if not is_head_layer(n.split("/")[0])]
    if not body_copied:
        raise TransferError(f"nothing but heads would be copied from {source.description}: no weight of the "
                            "network body matches by name and shape (another architecture?)")
    body_differs = report.shape_mismatched + [r for r in report.only_in_target
                                              if not is_head_layer(r[0].split("/")[0])]
    body_extra = [r for r in report.only_in_source if not is_head_layer(r[0].split("/")[0])]
    if (body_differs or body_extra) and not allow_partial:
        example = (body_differs or body_extra)[0][0]
        raise TransferError(
            f"architectures differ beyond the heads ({len(report.shape_mismatched)} shape mismatches, "
            f"{len(body_differs) - len(report.shape_mismatched)} target-only and {len(body_extra)} source-only "
            f"body weights, e.g. {example}); pass --allow_partial to copy what matches anyway")

    for v, value in plan:
        v.assign(value)
    if freeze:
        # Frozen weight extraction: the transferred body is a fixed feature extractor; the joint-dependent
        # layers (heads, heatmap re-injection) always train, even when every channel was carried over.
        fully = {n.split("/")[0] for n, _ in report.copied}
        partly = {r[0].split("/")[0] for r in report.only_in_target}
        for layer in net.layers:
            if layer.weights and layer.name in fully and layer.name not in partly and not is_head_layer(layer.name):
                layer.trainable = False
                report.frozen_layers.append(layer.name)
    return report


def _map_head_weight(layer_name, name, source_value, target_value, source_joints, target_joints):
    """The target value with shared joints' channels taken from the source, and how many were copied."""
    source_value = np.asarray(source_value)
    out = np.array(target_value, copy=True)
    pairs = [(target_joints.position(j), source_joints.position(j))
             for j in target_joints.names if j in source_joints.names]
    if layer_name.startswith("head"):
        # kernel [1,1,C,J] / bias [J]: joints are the last axis
        if source_value.shape[:-1] != out.shape[:-1] or source_value.shape[-1] != len(source_joints):
            return None
        for t, s in pairs:
            out[..., t] = source_value[..., s]
        per_joint = int(np.prod(out.shape[:-1]))
        return out, per_joint * len(pairs)
    # reinject{s}_heatmaps: kernel [1,1,J,C] (joints on the input axis), bias [C] (joint-independent)
    if name.endswith("bias"):
        return (source_value, out.size) if source_value.shape == out.shape else None
    if source_value.shape[-1] != out.shape[-1] or source_value.shape[2] != len(source_joints):
        return None
    for t, s in pairs:
        out[:, :, t, :] = source_value[:, :, s, :]
    return out, int(out.shape[0] * out.shape[1] * out.shape[3]) * len(pairs)


def transfer_to_workdir(source_path, target_config, out_dir, map_heads=False, freeze=False,
                        allow_partial=False, source_joints=None, verbose=True) -> TransferReport:
    """Build the target network, transfer, and write the workdir atomically (nothing on refusal)."""
    from kpt_tf.models import build_net
    from kpt_tf.training.loop import INIT_MODEL, save_config

    out_dir = Path(out_dir)
    if (out_dir / INIT_MODEL).exists():
        raise TransferError(f"{out_dir}: already holds {INIT_MODEL}; choose a new --out")
    source = read_source(source_path, source_joints)
    target_joints = JointSubset.parse(target_config.joints)
    net = build_net(target_config, target_joints)
    report = transfer_into(net, source, target_joints, map_heads=map_heads, freeze=freeze,
                           allow_partial=allow_partial)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".transfer-", dir=out_dir.parent))
    try:
        net.save(staging / INIT_MODEL)
        save_config(target_config, staging)
        payload = report.to_dict()
        payload.update(source=str(source_path), source_joints=list(source.joints.names) if source.joints else None,
                       target_joints=list(target_joints.names), map_heads=map_heads, freeze=freeze)
        (staging / "transfer_report.json").write_text(json.dumps(payload, indent=1))
        (staging / "transfer_report.txt").write_text(report.text() + "\n")
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, out_dir / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if verbose:
        print(report.text())
    return report


def define_flags():
    """CLI flags (defined only when run as a program, so importing this module defines none)."""
    flags.DEFINE_string("source", None, "Exported SavedModel directory or .keras model of the source.")
    config_flags.DEFINE_config_file("target_config", None, "Config of the target network (joints etc.).")
    flags.DEFINE_string("out", None, "Workdir to create for the target; kpt_tf.train continues from it.")
    flags.DEFINE_bool("freeze", False, "Make every copied layer non-trainable (frozen weight extraction).")
    flags.DEFINE_bool("map_heads", False, "Carry shared joints' head channels over by joint name.")
    flags.DEFINE_bool("allow_partial", False, "Copy what matches even if the bodies differ.")
    flags.DEFINE_string("source_joints", None, "The source's joint subset, if not recorded.")


def main(argv):
    del argv
    f = flags.FLAGS
    if not f.source or not f.out or f.target_config is None:
        raise app.UsageError("--source, --target_config and --out are required")
    try:
        transfer_to_workdir(f.source, f.target_config, f.out, map_heads=f.map_heads, freeze=f.freeze,
                            allow_partial=f.allow_partial, source_joints=f.source_joints)
    except TransferError as e:
        raise app.UsageError(f"transfer refused: {e}")
    print(f"workdir ready: {f.out} (continue with python -m kpt_tf.train --config ... --workdir {f.out})")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    define_flags()
    app.run(main)

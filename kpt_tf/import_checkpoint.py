r"""Import a PyTorch checkpoint as a kpt_tf workdir:
`python -m kpt_tf.import_checkpoint --format bearpaw --checkpoint model_best.pth.tar --out W
 [--num_stacks 8 --num_blocks 1 --channels 256 --joints all]`.

Stacked hourglasses of bearpaw/pytorch-pose (`--format bearpaw`) and of the FPD authors' code (`--format fpd`;
kpt_tf/interop/bearpaw.py for the name map and what each format was fed). The architecture, stem included, is read
from the checkpoint's keys and shapes and checked against any flag given; every tensor is used or reported, and an
unknown key, a missing weight or a shape mismatch refuses with the names, writing nothing. The result holds
`config.json` and `best.keras` like a training workdir, so `kpt_tf.evaluate`, `kpt_tf.export`, `kpt_tf.transfer`
and distillation take it; the model takes 0..255 RGB pixels like every kpt_tf model (the format's normalisation is
in its `input_rescale` layer, a BGR-fed first conv has its input channels reversed). `--joints` names the
checkpoint's own heatmap channels, in order (a 16-joint checkpoint: `all`; a subset network trained on e.g. the
upper body: `upper`); to move a 16-joint network to a subset, import it and use `kpt_tf.transfer --map_heads`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from absl import app, flags

from kpt_tf import workdir as wd
from kpt_tf.interop import bearpaw
from kpt_tf.interop.bearpaw import CheckpointError
from kpt_tf.joints import JointSubset


def imported_config(arch: dict, joints: JointSubset, input_size: int, checkpoint: str,
                    checkpoint_format: bearpaw.CheckpointFormat, channel_order: str):
    """The workdir config of an imported network (model, joints, codec: what loading it needs)."""
    import ml_collections

    mean, std = checkpoint_format.rgb_normalisation(channel_order)
    return ml_collections.ConfigDict(dict(
        name=f"{checkpoint_format.name}_hg_s{arch['num_stacks']}_b{arch['num_blocks']}_c{arch['channels']}",
        joints=",".join(joints.names),
        model=dict(name="hourglass", num_stacks=arch["num_stacks"], channels=arch["channels"],
                   depth=bearpaw.HOURGLASS_DEPTH, num_blocks=arch["num_blocks"], input_size=int(input_size),
                   stem=arch["stem"], input_mean=mean, input_std=std),
        codec=dict(sigma=checkpoint_format.sigma),   # the format's training targets
        imported_from=dict(format=checkpoint_format.name, checkpoint=str(checkpoint), channel_order=channel_order)))


def import_checkpoint(checkpoint, out_dir, *args, **kwargs) -> dict:
    """`_import_checkpoint` holding `out_dir`'s lock (kpt_tf.ownership)."""
    from kpt_tf import ownership

    with ownership.owned(out_dir, "kpt_tf.import_checkpoint"):
        return _import_checkpoint(checkpoint, out_dir, *args, **kwargs)


def _import_checkpoint(checkpoint, out_dir, checkpoint_format: str = "bearpaw", num_stacks: int | None = None,
                       num_blocks: int | None = None, channels: int | None = None, joints: str = "all",
                       input_size: int = 256, channel_order: str | None = None) -> dict:
    """Import; returns the report written to `import_report.json`. Raises CheckpointError (nothing written).

    `channel_order` overrides the format's (an FPD config with `COLOR_RGB: true` was fed RGB)."""
    from kpt_tf.models import build_net
    from kpt_tf.models.weights import EVERY_DIFFERENCE, CopyRefused, copy_by_name

    if checkpoint_format not in bearpaw.FORMATS:
        raise CheckpointError(f"--format {checkpoint_format!r}: not one of {sorted(bearpaw.FORMATS)}")
    fmt = bearpaw.FORMATS[checkpoint_format]
    channel_order = channel_order or fmt.channel_order
    if channel_order not in bearpaw.CHANNEL_ORDERS:
        raise CheckpointError(f"--channel_order {channel_order!r}: not one of {bearpaw.CHANNEL_ORDERS}")
    out_dir = Path(out_dir)
    try:
        wd.check_prepared_out(out_dir, "kpt_tf.import_checkpoint", str(checkpoint))
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    state = bearpaw.load_state_dict(checkpoint)
    not_finite = [k for k, v in state.items() if v.dtype.kind == "f" and not np.all(np.isfinite(v))]
    if not_finite:
        raise CheckpointError(f"checkpoint {checkpoint}: {len(not_finite)} tensors hold NaN or inf (e.g. "
                              f"{not_finite[0]}): the training that wrote it diverged; nothing was imported")
    try:
        arch = bearpaw.infer_architecture(state)
    except CheckpointError as e:
        raise CheckpointError(f"checkpoint {checkpoint}: {e}") from None
    for name, given in (("num_stacks", num_stacks), ("num_blocks", num_blocks), ("channels", channels)):
        if given is not None and int(given) != arch[name]:
            raise CheckpointError(f"checkpoint {checkpoint}: --{name} {given}, but the checkpoint has {arch[name]}")
    subset = JointSubset.parse(joints)
    weights, unused, ignored = bearpaw.to_kpt_weights(state, arch["num_stacks"], arch["num_blocks"], channel_order)
    if arch["num_classes"] != len(subset):
        # Dropping channels of a multi-stack network would change what the later stacks see (the heatmaps are
        # re-injected): that is a transfer, not an import.
        raise CheckpointError(
            f"checkpoint {checkpoint}: {arch['num_classes']} heatmap channels, but --joints {joints} has "
            f"{len(subset)}; import with its own joints, then `python -m kpt_tf.transfer --map_heads` to a subset")
    config = imported_config(arch, subset, input_size, checkpoint, fmt, channel_order)
    net = build_net(config, subset)
    problems = [f"unknown checkpoint keys {unused[:6]}"] if unused else []
    try:   # every weight of the network from the checkpoint, every mapped tensor into the network
        plan = copy_by_name(net, weights, f"checkpoint {checkpoint}", refuse=EVERY_DIFFERENCE, apply=False)
    except CopyRefused as e:
        problems.append(e.details)
    if problems:
        raise CheckpointError(f"checkpoint {checkpoint}: not a {fmt.name} hourglass of the inferred architecture "
                              f"{arch}: " + "; ".join(problems))
    plan.apply()
    report = {"checkpoint": str(checkpoint), "format": fmt.name, "channel_order": channel_order, "architecture": arch,
              "joints": list(subset.names), "tensors_used": len(state) - len(ignored),
              "tensors_ignored": ignored, "weights_written": len(plan.copied)}
    with wd.staged(out_dir, ".import-") as staging:
        net.save(staging / wd.BEST_MODEL)
        wd.save_config(config, staging)
        (staging / wd.IMPORT_REPORT).write_text(json.dumps(report, indent=1))
    return report


def define_flags():
    """CLI flags (defined only when run as a program)."""
    flags.DEFINE_enum("format", "bearpaw", sorted(bearpaw.FORMATS),
                      "Checkpoint format: bearpaw (pytorch-pose) or fpd (fast-human-pose-estimation.pytorch).")
    flags.DEFINE_string("checkpoint", None, "The PyTorch checkpoint (e.g. model_best.pth.tar).")
    flags.DEFINE_string("out", None, "Workdir to create (config.json, best.keras, import_report.json).")
    flags.DEFINE_integer("num_stacks", None, "Expected stacks (checked against the checkpoint).")
    flags.DEFINE_integer("num_blocks", None, "Expected residuals per module (checked).")
    flags.DEFINE_integer("channels", None, "Expected feature width (checked).")
    flags.DEFINE_string("joints", "all", "Joint subset of the imported heads (a 16-joint checkpoint: any subset).")
    flags.DEFINE_integer("input_size", 256, "Input size of the imported model (bearpaw: 256).")
    flags.DEFINE_enum("channel_order", None, list(bearpaw.CHANNEL_ORDERS),
                      "Channel order the network was trained on, if not the format's (bearpaw rgb; fpd bgr, as its "
                      "MPII configs' COLOR_RGB: false; a config with COLOR_RGB: true needs rgb).")


def main(argv):
    del argv
    f = flags.FLAGS
    if not f.checkpoint or not f.out:
        raise app.UsageError("--checkpoint and --out are required")
    try:
        report = import_checkpoint(f.checkpoint, f.out, f.format, f.num_stacks, f.num_blocks, f.channels, f.joints,
                                   f.input_size, f.channel_order)
    except CheckpointError as e:
        raise ValueError(f"import refused: {e}") from None
    print(f"imported {report['architecture']} ({report['weights_written']} weights) into {f.out}; "
          f"evaluate with: python -m kpt_tf.evaluate --model {f.out} --data RECORDS")


if __name__ == "__main__":
    define_flags()
    from kpt_tf import cli

    cli.run(main, "kpt_tf.import_checkpoint")

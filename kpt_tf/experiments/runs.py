"""What every experiment (KPTransfer, FPD, PBN) shares: training one run unless it already finished (so an
interrupted experiment continues) and the CLI's flags."""

from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from kpt_tf import workdir as wd


def train_once(config, workdir: Path, verbose: int = 1) -> dict:
    """Train unless a finished summary is already there; returns the training summary."""
    import keras

    from kpt_tf.training import loop

    if wd.is_finished(workdir):
        return json.loads((Path(workdir) / wd.TRAIN_SUMMARY).read_text())
    keras.backend.clear_session()
    return loop.train(config, workdir, verbose=verbose)


def define_flags(config_help: str, workdir_help: str) -> None:
    """--config, --workdir, --quick (defined only when run as a program, so importing defines none)."""
    config_flags.DEFINE_config_file("config", None, config_help)
    flags.DEFINE_string("workdir", None, workdir_help)
    flags.DEFINE_bool("quick", False, "Shrink everything to run in a few minutes on 2 CPU cores.")


def required_flags():
    """(config, workdir, quick) of the command line; a usage error when --config or --workdir is missing."""
    f = flags.FLAGS
    if f.config is None or not f.workdir:
        raise app.UsageError("--config and --workdir are required")
    return f.config, f.workdir, f.quick

"""What every experiment (KPTransfer, FPD, PBN) shares: training one run unless it already finished (so an
interrupted experiment continues) and the CLI's flags."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
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


# What a finished run leaves for the report: the summary (curves, per joint, seconds; written last, so it marks the
# run finished), and for a reader, its config and per-epoch metrics.
CARRIED_FILES = (wd.CONFIG, wd.METRICS_CSV, wd.TRAIN_SUMMARY)


def carry_finished_runs(source_root: Path, target_root: Path, with_network: Callable[[Path], bool]) -> list[str]:
    """Copies the finished runs under `source_root` that `target_root` lacks, so an experiment longer than one
    machine session continues elsewhere (`bench/kptransfer.py --carry`): what the report reads, and the best network
    of the runs (paths relative to the root) for which `with_network` is true, those a later run starts from.
    Returns the runs copied, relative to the roots."""
    copied = []
    for summary in sorted(Path(source_root).rglob(wd.TRAIN_SUMMARY)):
        relative = summary.parent.relative_to(source_root)
        target = Path(target_root) / relative
        if wd.is_finished(target):
            continue
        names = ((wd.BEST_MODEL,) if with_network(relative) else ()) + CARRIED_FILES      # the summary last
        missing = [n for n in names if not (summary.parent / n).is_file()]
        if missing:
            raise FileNotFoundError(f"finished run {summary.parent} lacks {', '.join(missing)}")
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(summary.parent / name, target / name)
        copied.append(str(relative))
    return copied


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

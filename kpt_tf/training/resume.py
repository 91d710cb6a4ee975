"""Crash-safe checkpoints and resuming: the backup of a run, its best checkpoint, and a clean CSV on resume.

Keras' own backup-and-restore and model-checkpoint callbacks overwrite their `.h5` files in place, so a run killed
while one is written leaves a truncated file that every rerun trips over (`OSError: ... truncated file`), and the
best-checkpoint tracker restarts from scratch on resume. `RunCheckpoints` replaces both with the same public
Keras calls (`Model.save_weights` / `load_weights`, `fit(initial_epoch=...)`) and an atomic commit:

    backup/epoch-0003.weights.h5   model + optimizer state after 3 epochs (written under a temporary name and
                                   `os.replace`d: a file under its final name is always complete)
    backup/state.json              the commit point, replaced atomically: the epochs done, the weights file,
                                   the best validation score so far and the per-epoch history

The CSV row of an epoch is written before the commit; on resume `resume()` drops every row at or after the
resumed epoch, so `metrics.csv` holds each epoch exactly once whatever moment the run was killed at.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

import keras

from kpt_tf import workdir as wd

STATE = "state.json"


_FAILED_WRITES: list = []


def replace_atomically(write, path: Path) -> None:
    """`write(tmp_path)` then move it to `path` (same directory, so `os.replace` is atomic)."""
    tmp = path.with_name(f".partial-{path.name}")     # keeps the suffix Keras checks (.weights.h5)
    failed = None
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        failed = e
        # Measured (h5py 3, HDF5 1.14): freeing the handle of an .h5 file whose write failed segfaults. The
        # exception's frames hold it: keep them (the process is about to stop; kpt_tf.cli exits without the
        # interpreter's teardown, which would free it too).
        _FAILED_WRITES.append(e)
    finally:
        if tmp.exists():
            tmp.unlink()
    if failed is not None:
        # A full disk: h5py's message spans lines and names only the temporary file; name the real one.
        reason = os.strerror(failed.errno) if failed.errno else str(failed)
        raise OSError(failed.errno, f"{path}: cannot write it ({reason}); the previous {path.name}, if any, is "
                      "intact")


def write_text_atomically(path, text: str) -> None:
    replace_atomically(lambda p: Path(p).write_text(text), Path(path))


def best_is_last(workdir) -> bool:
    """Whether the best checkpoint holds the weights of the last committed epoch (`RunCheckpoints` copies an epoch's
    backup file to it when the epoch is the best, so the bytes are equal)."""
    import filecmp

    state, best = read_state(workdir), Path(workdir) / wd.BEST_WEIGHTS
    return (state is not None and best.is_file()
            and filecmp.cmp(best, Path(workdir) / wd.BACKUP / state["weights"], shallow=False))


def read_state(workdir) -> dict | None:
    """The committed backup of a run in `workdir` (None when there is none)."""
    path = Path(workdir) / wd.BACKUP / STATE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        weights = path.parent / state["weights"]
        int(state["epoch"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: unreadable backup state ({e}); delete {path.parent} to restart the run "
                         "from epoch 0") from None
    if not weights.is_file():
        raise ValueError(f"{path}: its weights file {weights.name} is missing; delete {path.parent} to restart "
                         "the run from epoch 0")
    return state


def resume(trainer, workdir, clean_csv: bool = True) -> dict:
    """Restore the last committed backup into `trainer` (built model and optimizer); clean `metrics.csv`
    (unless `clean_csv` is False: a non-chief worker, which only reads the chief's workdir).

    Returns the state (`epoch` 0, no best, empty history when there is no backup)."""
    workdir = Path(workdir)
    state = read_state(workdir) or {"epoch": 0, "best": None, "history": []}
    if state["epoch"]:
        weights = workdir / wd.BACKUP / state["weights"]
        try:
            trainer.load_weights(weights)
        except (OSError, ValueError) as e:
            raise ValueError(f"{weights}: the backup of epoch {state['epoch']} cannot be loaded ({e}); delete "
                             f"{weights.parent} to restart the run from epoch 0") from None
    if clean_csv:
        drop_csv_rows_from(workdir / wd.METRICS_CSV, int(state["epoch"]))
    return state


def drop_csv_rows_from(path: Path, epoch: int) -> None:
    """Keep the header and the rows of epochs before `epoch` (0-based, CSVLogger's numbering)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    if not lines:
        return
    header = next(csv.reader([lines[0]]))
    kept = [lines[0]]
    for line in lines[1:]:
        row = next(csv.reader([line]), [])
        if len(row) == len(header) and line.endswith("\n") and row[0].isdigit() and int(row[0]) < epoch:
            kept.append(line)
    if kept != lines:
        write_text_atomically(path, "".join(kept))


class RunCheckpoints(keras.callbacks.Callback):
    """At every epoch end: the best weights (by `monitor`, higher is better) and the backup, each written
    atomically, then the commit (`backup/state.json`). Must come after the callbacks that add `monitor`
    to the logs and after the CSV logger (so a committed epoch always has its CSV row).

    `validation` (a `callbacks.ValidationPCKh`) has its `best` and `history` saved in the state and restored
    from `state`."""

    def __init__(self, workdir, monitor: str, validation=None, state: dict | None = None):
        super().__init__()
        self.workdir = Path(workdir)
        self.monitor, self.validation = monitor, validation
        state = state or {}
        self.best = state.get("best")
        if validation is not None and state.get("history"):
            from kpt_tf.training.history import EpochScores

            validation.history[:0] = [EpochScores.from_dict(h) for h in state["history"]]
            validation.best = self.best
            validation.last_mean = validation.history[-1].mean

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        value = None if value is None else float(value)
        backup = self.workdir / wd.BACKUP
        backup.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        replace_atomically(self.model.save_weights, backup / name)
        if value is not None and math.isfinite(value) and (self.best is None or value > self.best):
            # the same weights as the backup just written: a copy of that file, not a second pass of Keras' saver
            # over every variable (about a second per save even for the tiny test network)
            best = self.workdir / wd.BEST_WEIGHTS
            best.parent.mkdir(parents=True, exist_ok=True)
            replace_atomically(lambda tmp: shutil.copyfile(backup / name, tmp), best)
            self.best = value
        history = [h.to_dict() for h in self.validation.history] if self.validation is not None else []
        state = {"epoch": epoch + 1, "weights": name, "best": self.best, "history": history}
        write_text_atomically(backup / STATE, json.dumps(state, indent=1))
        for old in backup.glob("epoch-*.weights.h5"):   # only after the commit
            if old.name != name:
                old.unlink()


def remove_backup(workdir) -> None:
    """Called once the run's final files are written (a kill before that resumes from the backup)."""
    import shutil

    shutil.rmtree(Path(workdir) / wd.BACKUP, ignore_errors=True)


def flat_config(d: dict, prefix: str = "") -> dict:
    """A nested config dict as {"a.b.c": value}."""
    out = {}
    for k, v in d.items():
        out.update(flat_config(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def comparable_config(config: dict) -> dict:
    """A config (parsed config.json) flattened as reruns compare it: the sections plugins declare (the model's, the
    trainer's) completed from their declarations, so that a config.json written before a key was declared equals
    today's config holding that key's default (the value the run used). A config.json written before `data.warp`
    existed trained with the warp of that time (`augment.WARP_BEFORE_THE_KEY`)."""
    import ml_collections

    from kpt_tf.data.augment import WARP_BEFORE_THE_KEY
    from kpt_tf.models import architecture
    from kpt_tf.training.trainer import resolve_trainer_config

    c = ml_collections.ConfigDict(config)
    if "data" in c and "warp" not in c.data:
        c.data.warp = WARP_BEFORE_THE_KEY
    if "model" in c:
        architecture(c).section.fill(c.model)
    if "train" in c and "trainer" in c.train:
        resolve_trainer_config(c)
    return flat_config(json.loads(c.to_json_best_effort()))


def check_rerun(config, workdir) -> dict | None:
    """A rerun of the same command in a workdir: the finished run's summary (nothing to redo), or None to
    train (from scratch or from the backup). Refuses a config that differs from the one of the finished or
    backed-up run (its backup would not fit, or its results would be overwritten)."""
    workdir = Path(workdir)
    finished = wd.is_finished(workdir)
    if not (finished or (workdir / wd.BACKUP / STATE).is_file()) or not (workdir / wd.CONFIG).is_file():
        return None
    before = comparable_config(json.loads((workdir / wd.CONFIG).read_text()))
    now = comparable_config(json.loads(config.to_json_best_effort()))
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if changed:
        what = "a finished run" if finished else "the backup of an interrupted run"
        raise ValueError(f"{workdir} holds {what} with another config (differs in {', '.join(changed)}); "
                         "rerun with the same config, or use a new --workdir")
    if finished:
        return json.loads((workdir / wd.TRAIN_SUMMARY).read_text())
    return None

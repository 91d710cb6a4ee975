"""Killed runs resume (kpt_tf/training/resume.py): real SIGKILLs of real training processes, then reruns."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import REPO, tiny_train_config

EPOCHS = 3


def write_config(path, records, steps: int, **overrides) -> str:
    """A config file for `python -m kpt_tf.train`: one 16-channel stack on 64-pixel crops."""
    lines = "".join(f"    c.{k} = {v!r}\n" for k, v in overrides.items())
    path.write_text(textwrap.dedent(f"""\
        from tests.conftest import tiny_train_config
        def get_config():
            c = tiny_train_config({str(records)!r}, epochs={EPOCHS}, steps={steps}, stacks=1, channels=16)
        """) + lines + "    return c\n")
    return str(path)


def train_command(config_path, run) -> list:
    return [sys.executable, "-m", "kpt_tf.train", "--config", config_path, "--workdir", str(run)]


def csv_epochs(run) -> list:
    with open(run / "metrics.csv") as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def assert_complete_run(run):
    assert csv_epochs(run) == list(range(EPOCHS))           # each epoch exactly once
    summary = json.loads((run / "train_summary.json").read_text())
    assert [h["epoch"] for h in summary["history"]] == list(range(1, EPOCHS + 1))   # the whole history
    assert summary["best_val_pckh_mean"] == max(h["mean"] for h in summary["history"])
    assert not (run / "backup").exists()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_resumes_from_last_completed_epoch(embedded_records, tmp_path):
    config = write_config(tmp_path / "cfg.py", embedded_records, steps=30)
    run = tmp_path / "run"
    proc = subprocess.Popen(train_command(config, run), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 400
    # The first epoch's backup is committed (state.json) after its CSV row: wait for the commit, not the row
    # (under load the kill fell between the two).
    while time.time() < deadline and proc.poll() is None:
        if (run / "backup" / "state.json").is_file():
            break
        time.sleep(0.1)
    time.sleep(0.5)                                          # inside the second epoch
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "train_summary.json").exists()
    state = json.loads((run / "backup" / "state.json").read_text())
    assert 1 <= state["epoch"] < EPOCHS
    done = subprocess.run(train_command(config, run), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_complete_run(run)


KILL_WHILE_WRITING_BACKUP = textwrap.dedent("""
    import os, signal, sys
    import keras
    from kpt_tf.training import loop
    from tests.conftest import tiny_train_config

    save_weights = keras.Model.save_weights
    calls = []

    def save_and_die_in_the_second_backup(self, filepath, *args, **kwargs):
        save_weights(self, filepath, *args, **kwargs)
        if "backup" in str(filepath):
            calls.append(filepath)
            if len(calls) == 2:       # the disk got half of the file when the signal came
                os.truncate(filepath, os.path.getsize(filepath) // 2)
                os.kill(os.getpid(), signal.SIGKILL)

    if sys.argv[2] == "kill":
        keras.Model.save_weights = save_and_die_in_the_second_backup
    config = tiny_train_config(sys.argv[1], epochs=3, steps=3, stacks=1, channels=16)
    loop.train(config, sys.argv[3], verbose=0)
""")


@pytest.mark.slow
def test_killed_while_writing_its_backup_the_run_resumes(embedded_records, tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-c", KILL_WHILE_WRITING_BACKUP, str(embedded_records)]
    killed = subprocess.run([*args, "kill", str(run)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    done = subprocess.run([*args, "rerun", str(run)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_complete_run(run)


def test_resume_drops_csv_rows_of_uncommitted_epochs(tmp_path):
    from kpt_tf.training.resume import drop_csv_rows_from

    path = tmp_path / "metrics.csv"
    path.write_text("epoch,loss\n0,1.5\n1,1.2\n2,1.1\n3,1.")     # the last row half-written
    drop_csv_rows_from(path, 2)
    assert path.read_text() == "epoch,loss\n0,1.5\n1,1.2\n"
    drop_csv_rows_from(path, 0)
    assert path.read_text() == "epoch,loss\n"


def test_a_finished_run_whose_config_predates_a_declared_key_is_still_the_same_run(tmp_path):
    """A config.json written before `distill.loss` and the model's `input_mean`/`input_std` existed: the declared
    defaults are what that run used, so the rerun finds it finished; a key changed since is still a difference."""
    from configs.fpd_demo import get_config
    from kpt_tf.training.resume import check_rerun

    config = get_config()
    saved = json.loads(config.to_json_best_effort())
    del saved["distill"]["loss"], saved["model"]["input_mean"], saved["model"]["input_std"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    (tmp_path / "train_summary.json").write_text(json.dumps({"epochs": 1}))
    assert check_rerun(config, tmp_path) == {"epochs": 1}
    config.distill.alpha = 0.25
    with pytest.raises(ValueError, match=r"differs in distill.alpha\)"):
        check_rerun(config, tmp_path)


def test_a_config_from_before_data_warp_reads_back_as_the_warp_it_trained_with(tmp_path):
    """Runs before `data.warp` existed trained with the XLA warp: resuming one takes --config.data.warp=xla, and the
    new training default (cv2) is a different run, named as such."""
    from configs.base import base_config
    from kpt_tf.data.augment import TRAINING_WARP, WARP_BEFORE_THE_KEY
    from kpt_tf.training.resume import check_rerun

    config = base_config()
    saved = json.loads(config.to_json_best_effort())
    del saved["data"]["warp"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    (tmp_path / "train_summary.json").write_text(json.dumps({"epochs": 1}))
    assert TRAINING_WARP != WARP_BEFORE_THE_KEY
    with pytest.raises(ValueError, match=r"differs in data.warp\)"):
        check_rerun(config, tmp_path)
    config.data.warp = WARP_BEFORE_THE_KEY
    assert check_rerun(config, tmp_path) == {"epochs": 1}


@pytest.mark.slow
def test_rerun_of_a_finished_run_trains_nothing_and_a_changed_config_is_refused(embedded_records, tmp_path):
    from kpt_tf.training import loop

    config = tiny_train_config(embedded_records, epochs=1, steps=2, stacks=1)
    first = loop.train(config, tmp_path / "run", verbose=0)
    best = (tmp_path / "run" / "best.keras").stat().st_mtime_ns
    assert loop.train(config, tmp_path / "run", verbose=0) == json.loads(json.dumps(first))
    assert (tmp_path / "run" / "best.keras").stat().st_mtime_ns == best
    config.train.learning_rate = 0.5
    with pytest.raises(ValueError, match=r"finished run with another config \(differs in train.learning_rate\)"):
        loop.train(config, tmp_path / "run", verbose=0)


@pytest.mark.slow
def test_nan_loss_stops_naming_epoch_and_step_and_keeps_the_last_good_backup(embedded_records, tmp_path):
    import h5py
    import keras
    import numpy as np

    from kpt_tf.training import loop
    from kpt_tf.training.callbacks import TrainingDiverged

    class Diverge(keras.callbacks.Callback):     # a learning rate no network survives, from the second epoch
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.model.optimizer.learning_rate = 1e30

    def all_finite(path) -> bool:
        values = []

        def collect(_, item):
            if isinstance(item, h5py.Dataset):
                values.append(np.asarray(item))

        with h5py.File(path, "r") as f:
            f.visititems(collect)
        return bool(values) and all(np.all(np.isfinite(v)) for v in values if v.dtype.kind == "f")

    config = tiny_train_config(embedded_records, epochs=3, steps=4, stacks=1)
    run = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"is (nan|inf) at epoch 2, step [1-4] of 4 .*backup of epoch 1"):
        loop.train(config, run, extra_callbacks=[Diverge()], verbose=0)
    assert not (run / "best.keras").exists() and not (run / "final.keras").exists()
    state = json.loads((run / "backup" / "state.json").read_text())
    assert state["epoch"] == 1
    assert all_finite(run / "backup" / state["weights"]) and all_finite(run / "checkpoints" / "best.weights.h5")
    assert csv_epochs(run) == [0]
    summary = loop.train(config, run, verbose=0)    # resumes from good weights, not NaN ones
    assert [h["epoch"] for h in summary["history"]] == [1, 2, 3] and csv_epochs(run) == [0, 1, 2]
    net = keras.saving.load_model(run / "final.keras", compile=False)
    assert all(np.all(np.isfinite(w)) for w in net.get_weights())


@pytest.mark.slow
def test_nan_loss_exits_non_zero_with_a_message_not_a_traceback(embedded_records, tmp_path):
    config = write_config(tmp_path / "cfg.py", embedded_records, steps=4, **{"train.learning_rate": 1e30})
    done = subprocess.run(train_command(config, tmp_path / "run"), cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 3, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("kpt_tf.train: error: ") and "at epoch 1, step" in last, last
    assert "Kept nothing: no epoch had completed" in last and "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "best.keras").exists()


@pytest.mark.slow
def test_a_full_disk_stops_training_clearly_and_the_rerun_finishes(embedded_records, tmp_path):
    # Writes past 60 kB fail (EFBIG, as ENOSPC on a full disk): config, CSV and TensorBoard fit, the first
    # weights file does not.
    from tests.conftest import file_size_limit

    config, run = write_config(tmp_path / "cfg.py", embedded_records, steps=3), tmp_path / "run"
    done = subprocess.run(train_command(config, run), cwd=REPO, capture_output=True, text=True, timeout=600,
                          preexec_fn=file_size_limit(60_000))
    assert done.returncode == 2, done.stderr[-3000:]               # not a crash (HDF5 segfaulted at exit before)
    last = done.stderr.strip().splitlines()[-1]
    # the first weights file of a run is its first epoch's backup (the best checkpoint is a copy of it)
    assert last.startswith(f"kpt_tf.train: error: {run}/backup/epoch-0001.weights.h5: cannot write it (File too "
                           "large)"), last
    # h5py prints its own RuntimeError for every object of the failed file it cannot release (their only frame is
    # h5py/_objects.pyx); no Python traceback of the run itself
    assert 'File "/' not in done.stderr, done.stderr[-3000:]
    left = [p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()]
    assert not [p for p in left if ".partial-" in p or p.endswith((".keras", ".h5"))], left   # no half-written file
    assert not (run / "train_summary.json").exists()
    again = subprocess.run(train_command(config, run), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_complete_run(run)

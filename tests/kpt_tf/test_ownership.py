"""kpt_tf.ownership: one writer per directory, for every command that writes one; the lock dies with its holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from kpt_tf import ownership
from tests.conftest import REPO


def test_a_second_writer_is_refused_naming_the_directory_and_the_holder(tmp_path):
    target = tmp_path / "run"
    with ownership.owned(target, "kpt_tf.train"):
        with pytest.raises(ownership.DirectoryBusy) as refused:
            with ownership.owned(target, "kpt_tf.transfer"):
                pass
        message = str(refused.value)
        assert str(target) in message and f"kpt_tf.train pid {os.getpid()}" in message and "started 20" in message
        with ownership.owned(tmp_path / "other", "kpt_tf.export"):    # another directory: its own lock
            pass
    with ownership.owned(target, "kpt_tf.transfer"):                  # released at the end of the block
        pass
    assert not ownership.lock_path(target).exists()


HOLDER = """
import sys, time
from kpt_tf import ownership
with ownership.owned(sys.argv[1], "kpt_tf.train"):
    print("holding", flush=True)
    time.sleep(120)
"""


def test_the_lock_dies_with_a_killed_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run")], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    with pytest.raises(ownership.DirectoryBusy, match=f"pid {holder.pid}"):
        with ownership.owned(tmp_path / "run", "kpt_tf.train"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with ownership.owned(tmp_path / "run", "kpt_tf.train"):           # no stale lock to clean up by hand
        pass


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "transfer", "import", "export", "export_tflite", "convert", "predict"])
def test_every_writing_command_refuses_a_directory_another_process_writes(command, tmp_path, trained_workdir,
                                                                          embedded_records):
    """Each command started on a directory that another process holds (its inputs valid): exit 2, one line naming
    the directory and the holder, nothing written into it."""
    import cv2
    import numpy as np

    cv2.imwrite(str(tmp_path / "photo.jpg"), np.full((64, 64, 3), 90, np.uint8))
    target = tmp_path / "target"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(target)], cwd=REPO, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "holding"
    try:
        args = {
            "train": ["kpt_tf.train", "--config", "configs/demo.py", "--config.data.dir", str(embedded_records),
                      "--workdir"],
            "transfer": ["kpt_tf.transfer", "--source", str(tmp_path), "--target_config", "configs/demo.py", "--out"],
            "import": ["kpt_tf.import_checkpoint", "--checkpoint", str(tmp_path / "x.pth"), "--out"],
            "export": ["kpt_tf.export", "--workdir", str(trained_workdir), "--out"],
            "export_tflite": ["kpt_tf.export", "--workdir", str(trained_workdir), "--format", "tflite", "--out"],
            "convert": ["data_prep.mpii_to_tfrecord", "--annotations", str(tmp_path / "a.json"), "--images_dir",
                        str(tmp_path), "--output_dir"],
            "predict": ["kpt_tf.predict", "--model", str(trained_workdir), "--input", str(tmp_path / "photo.jpg"),
                        "--out"],
        }[command]
        path = str(target) + (".tflite" if command == "export_tflite" else "")
        if command == "export_tflite":        # the holder holds the file's lock
            holder.kill()
            holder.wait()
            holder = subprocess.Popen([sys.executable, "-c", HOLDER, path], cwd=REPO, stdout=subprocess.PIPE,
                                      text=True)
            assert holder.stdout.readline().strip() == "holding"
        started = time.time()
        done = subprocess.run([sys.executable, "-m", *args, path], cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 2, done.stderr[-2000:]
        assert f"{path}: another process is writing it (kpt_tf.train pid {holder.pid}" in done.stderr, \
            done.stderr[-2000:]
        assert "Traceback" not in done.stderr and time.time() - started < 120
        assert not os.path.exists(path) or not os.listdir(path)
    finally:
        holder.kill()
        holder.wait()

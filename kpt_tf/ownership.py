"""One writer per directory: an OS lock a command holds on the directory it writes, for as long as it runs.

    with ownership.owned(workdir, "kpt_tf.train"):
        ...                                     # nothing else can write `workdir` meanwhile

The lock is `flock(LOCK_EX | LOCK_NB)` on a file beside the directory (`.<name>.kpt_tf-lock` in its parent, so a
command that replaces the directory as a whole, like an export, keeps it). The kernel releases it when the process
ends however it ends, so a SIGKILL leaves no stale lock to clean up. A second writer is refused at once, naming the
directory and the holder, which writes its pid, host, command and start time into the lock file. Readers
(evaluate, export of a finished run) take no lock: every writer here writes atomically (a staged file or directory
renamed into place), so a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
from pathlib import Path

SUFFIX = ".kpt_tf-lock"


class DirectoryBusy(ValueError):
    """Another process writes the directory (the message names it and the holder)."""


def lock_path(directory) -> Path:
    directory = Path(os.path.abspath(directory))
    return directory.with_name(f".{directory.name}{SUFFIX}")


@contextlib.contextmanager
def owned(directory, command: str):
    """Hold the directory's lock for the block; raises DirectoryBusy when another process holds it."""
    path = lock_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise DirectoryBusy(f"{directory}: another process is writing it ({holder(path)}); wait for it to "
                                "finish or stop it, then rerun") from None
        # The file may have been removed and recreated by a holder that just released it: lock the one on disk.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                "argv": " ".join(sys.argv[1:])[:300],
                "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)          # releases the lock


def holder(path: Path) -> str:
    """The holder a lock file names, in words."""
    try:
        info = json.loads(Path(path).read_text())
        return (f"{info.get('command')} pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}"
                + (f": {info['argv']}" if info.get("argv") else ""))
    except (OSError, ValueError):
        return "a kpt_tf command that has not yet said who it is"

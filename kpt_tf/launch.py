r"""Multi-worker training on one machine: N `kpt_tf.train` workers on 127.0.0.1 under one `TF_CONFIG` cluster.

    python -m kpt_tf.launch --workers 2 -- --config configs/demo.py --workdir runs/mw --config.data.dir=...

Picks N free ports, starts worker i with `TF_CONFIG = {"cluster": {"worker": [all addresses]}, "task": {"type":
"worker", "index": i}}` and `--config.train.strategy=multi_worker` (unless the arguments set a strategy), streams
every worker's output line by line with a `[worker i]` prefix, and stops the others as soon as one fails (its exit
code is the launcher's). Worker 0 is the chief: it alone writes the workdir (kpt_tf/training/distribute.py).
Rerunning the same command after a failure resumes every worker from the chief's last backup.

On a real cluster there is no launcher: each machine runs the same `python -m kpt_tf.train ...
--config.train.strategy=multi_worker` with its own `TF_CONFIG` (see README).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from absl import app, flags


def define_flags():
    """The CLI flags; defined only when run as a program (importing this module, as its tests do, defines none:
    absl flags are global)."""
    flags.DEFINE_integer("workers", 2, "Number of worker processes.")
    flags.DEFINE_string("host", "127.0.0.1", "Address the workers listen on.")
    flags.DEFINE_float("grace_seconds", 10.0, "After a worker fails: seconds the others get to stop before a kill.")


FLAGS = flags.FLAGS

STRATEGY_FLAG = "--config.train.strategy"


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """N distinct ports free at the time of asking (held open together, so they differ)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": int(index)}})


def worker_command(train_args: list[str]) -> list[str]:
    args = list(train_args)
    if not any(a == STRATEGY_FLAG or a.startswith(STRATEGY_FLAG + "=") for a in args):
        args.append(f"{STRATEGY_FLAG}=multi_worker")
    return [sys.executable, "-m", "kpt_tf.train", *args]


def _stream(process: subprocess.Popen, prefix: str, lock: threading.Lock) -> None:
    for line in process.stdout:
        with lock:
            sys.stdout.write(f"{prefix}{line}" if line.endswith("\n") else f"{prefix}{line}\n")
            sys.stdout.flush()


def launch(train_args: list[str], workers: int, host: str = "127.0.0.1", grace_seconds: float = 10.0) -> int:
    """Run the workers to the end; returns 0 when all succeed, else the first failing worker's exit code."""
    if workers < 1:
        raise app.UsageError(f"--workers must be >= 1, got {workers}")
    if not train_args:
        raise app.UsageError("give the kpt_tf.train arguments after `--` (e.g. -- --config configs/demo.py "
                             "--workdir runs/mw)")
    addresses = [f"{host}:{p}" for p in free_ports(workers, host)]
    command = worker_command(train_args)
    print(f"[launch] {workers} workers at {', '.join(addresses)}: {' '.join(command[1:])}", flush=True)
    lock = threading.Lock()
    processes, threads = [], []
    for i in range(workers):
        env = dict(os.environ, TF_CONFIG=tf_config(addresses, i), PYTHONUNBUFFERED="1")
        p = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             bufsize=1)
        processes.append(p)
        print(f"[launch] worker {i}: pid {p.pid}", flush=True)
        t = threading.Thread(target=_stream, args=(p, f"[worker {i}] ", lock), daemon=True)
        t.start()
        threads.append(t)
    failed: tuple[int, int] | None = None
    try:
        while True:
            codes = [p.poll() for p in processes]
            bad = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if bad:
                failed = bad[0]
                break
            if all(c == 0 for c in codes):
                break
            time.sleep(0.2)
    except KeyboardInterrupt as e:     # Ctrl-C, or SIGTERM (kpt_tf.cli turns it into the same): stop every worker
        failed = (-1, 128 + int(getattr(e, "signum", signal.SIGINT)))
    if failed is not None:
        index, code = failed
        who = "interrupted" if index < 0 else f"worker {index} exited with {code}"
        print(f"[launch] {who}: stopping the other workers", flush=True)
        _stop(processes, grace_seconds)
    for t in threads:
        t.join(timeout=5)
    if failed is None:
        print(f"[launch] all {workers} workers finished", flush=True)
        return 0
    return failed[1] if failed[1] > 0 else 1


def _stop(processes, grace_seconds: float) -> None:
    for p in processes:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.time() + grace_seconds
    for p in processes:
        try:
            p.wait(timeout=max(0.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv):
    return launch(argv[1:], FLAGS.workers, FLAGS.host, FLAGS.grace_seconds)


if __name__ == "__main__":
    define_flags()
    from kpt_tf import cli

    cli.run(main, "kpt_tf.launch")

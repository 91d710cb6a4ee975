"""The one process-start policy of data_prep: worker pools for the generator and the converter.

Workers run numpy and OpenCV only. They start with **forkserver**: a fresh interpreter (the server) is
started once per parent process, imports the modules the workers need (`PRELOAD`, none of which imports
TensorFlow), and every worker of every later pool is a fork of that server. So
- a worker never inherits the parent's state: a parent that has imported TensorFlow (the training, the
  demo, the tests) cannot pass its threads and locks on to a forked child, as plain fork would;
- unlike spawn, a pool does not pay an interpreter start and the numpy/OpenCV import per worker: the
  server pays them once, and the generator and converter pools of one run (data_prep.embedded) share it.
multiprocessing still imports the parent's `__main__` module (not its `if __name__ == "__main__"` block) in
each worker, as with spawn, so a program that runs these pools must not import TensorFlow at module level.

Results come back in task order and every task draws its randomness from its own seed, so the output does
not depend on the number of workers. A worker that dies raises in the parent (a ProcessPoolExecutor, not
multiprocessing.Pool, which would hang), and a worker whose parent was killed outright leaves on its own.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence

START_METHOD = "forkserver"
# Imported once by the forkserver, inherited by every worker (all TF-free; an unimportable one is skipped).
PRELOAD = ("numpy", "cv2", "data_prep.crops", "data_prep.synth.from_annotations")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _context():
    if START_METHOD not in multiprocessing.get_all_start_methods():  # not on Windows: spawn there
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context(START_METHOD)
    context.set_forkserver_preload(list(PRELOAD))
    return context


def _leave_when_owner_is_gone(owner):
    owner.join()  # waits on the owner's sentinel: returns when the process that made the pool is gone
    os._exit(1)


def _init_worker():
    import cv2

    cv2.setNumThreads(1)  # one task per process; OpenCV's own threads would only contend for the cores
    # An owner killed outright (SIGKILL) cannot stop its workers, which would wait on the task queue (or on a
    # full result pipe) forever, and the forkserver stays as long as they do: each worker leaves on its own.
    # The owner is not the worker's parent under forkserver, so its sentinel is watched, not getppid().
    owner = multiprocessing.parent_process()
    if owner is not None:
        threading.Thread(target=_leave_when_owner_is_gone, args=(owner,), daemon=True).start()


@contextlib.contextmanager
def single_threaded_cv2():
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


@contextlib.contextmanager
def ordered_map(fn: Callable, tasks: Sequence, num_workers: int | None = None,
                chunksize: int | None = None) -> Iterator[Iterable]:
    """`with ordered_map(fn, tasks, n) as results:` -> fn(task) for every task, lazily, in task order.

    With one worker (or one task) everything runs in this process; otherwise in min(n, tasks) worker
    processes (default n: the available CPUs). Leaving the block stops the workers; pending tasks are cancelled.
    """
    workers = available_cpus() if num_workers is None else int(num_workers)
    workers = max(1, min(workers, len(tasks)))
    if workers == 1:
        with single_threaded_cv2():
            yield map(fn, tasks)
        return
    chunk = chunksize or max(1, min(8, len(tasks) // (4 * workers)))
    pool = ProcessPoolExecutor(workers, mp_context=_context(), initializer=_init_worker)
    try:
        yield pool.map(fn, tasks, chunksize=chunk)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

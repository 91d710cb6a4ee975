"""The one worker-pool policy of data_prep (data_prep.workers): task order, and no TensorFlow in the workers."""

import os
import subprocess
import sys

from data_prep import workers
from tests.conftest import REPO


def _pid_and_tensorflow(task):
    return task, os.getpid(), "tensorflow" in sys.modules


def test_results_in_task_order_in_process_and_in_workers():
    tasks = list(range(23))
    with workers.ordered_map(_pid_and_tensorflow, tasks, 1) as results:
        inline = list(results)
    assert [t for t, _, _ in inline] == tasks and {pid for _, pid, _ in inline} == {os.getpid()}
    with workers.ordered_map(_pid_and_tensorflow, tasks, 2, chunksize=2) as results:
        pooled = list(results)
    assert [t for t, _, _ in pooled] == tasks and os.getpid() not in {pid for _, pid, _ in pooled}


def test_workers_of_a_parent_that_imported_tensorflow_do_not_have_it():
    code = ("import tensorflow, data_prep.workers as w\n"
            "from tests.data_prep.test_workers import _pid_and_tensorflow\n"
            "with w.ordered_map(_pid_and_tensorflow, list(range(8)), 2) as r:\n"
            "    print(sorted({has_tf for _, _, has_tf in r}))\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[False]"

"""kpt_tf.cli: what every command-line program does with its log and its errors."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

PROGRAM = """
import logging, sys
from absl import logging as absl_logging
from kpt_tf import cli

def main(argv):
    absl_logging.info("absl-info-line")
    logging.getLogger("tensorflow").info("tf-info-line")
    logging.getLogger("tensorflow").warning("tf-warning-line")
    raise ValueError("the input is bad")

cli.run(main, "prog")
"""


def run_program(*flags):
    return subprocess.run([sys.executable, "-c", PROGRAM, *flags], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_tensorflow_info_log_is_hidden_unless_verbosity_is_asked_and_errors_exit_2():
    quiet = run_program()
    assert quiet.returncode == 2
    assert "tf-info-line" not in quiet.stderr and "absl-info-line" not in quiet.stderr
    assert "tf-warning-line" in quiet.stderr
    assert quiet.stderr.strip().splitlines()[-1] == "prog: error: the input is bad"
    verbose = run_program("--verbosity=0")
    assert "tf-info-line" in verbose.stderr and "absl-info-line" in verbose.stderr and verbose.returncode == 2


def test_a_config_file_that_is_not_python_or_raises_gets_one_line_naming_file_line_and_what_config_takes(tmp_path):
    cases = {
        "run.yaml": ("model:\n  num_stacks: 2\n", "run.yaml:1: a YAML file, which Python cannot parse"),
        "typo.py": ("def get_config(:\n    pass\n", "typo.py:1: a Python syntax error"),
        "raises.py": ("def get_config():\n    raise RuntimeError('no such dataset')\n",
                      "raises.py:2: the config file raised RuntimeError: no such dataset"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        done = subprocess.run([sys.executable, "-m", "kpt_tf.train", "--config", str(tmp_path / name), "--workdir",
                               str(tmp_path / "run")], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr[-2000:]
        assert message in done.stderr and "--config takes an ml_collections Python file" in done.stderr
        assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()


# A test worker's process may pass its children SIGTERM ignored or blocked (CI 2026-12-07: the SIGTERM case got no
# reply in 30 s and printed nothing, on a worker that had run TensorFlow tests in-process). A program keeps an
# inherited SIG_IGN, as Python itself does for SIGINT; these tests are about what the program does with a signal it
# receives, so their stand-in programs start as a shell would start them: both signals default and unblocked.
AS_FROM_A_SHELL = """
import signal
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
"""

SLEEPER = AS_FROM_A_SHELL + """
import pathlib, sys, time
from kpt_tf import cli

def main(argv):
    try:
        print("started", flush=True)
        time.sleep(60)
    finally:
        pathlib.Path(sys.argv[1]).write_text("cleaned up")   # staged files are removed the same way

cli.run(main, "prog")
"""


def communicate_or_show_signal_state(proc, timeout: float):
    """`proc.communicate`; a process that outlives the timeout fails the test with its signal masks (blocked,
    ignored, caught) rather than only a timeout."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        status = open(f"/proc/{proc.pid}/status").read().splitlines()
        proc.kill()
        proc.communicate()
        raise AssertionError(f"no exit {timeout} s after the signal: "
                             f"{[line for line in status if line.startswith('Sig')]}") from None


def test_ctrl_c_and_sigterm_stop_with_one_line_and_128_plus_the_signal(tmp_path):
    import signal

    for signum, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        marker = tmp_path / f"finally_{signum}"
        proc = subprocess.Popen([sys.executable, "-c", SLEEPER, str(marker)], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signum)
        _, err = communicate_or_show_signal_state(proc, 30)
        assert proc.returncode == code, err
        assert err.strip() == f"prog: error: stopped by {signal.Signals(signum).name}; rerun the same command to resume"
        assert marker.read_text() == "cleaned up"


LAUNCHED = AS_FROM_A_SHELL + """
import json, os, pathlib, sys
from kpt_tf import cli, launch

WORKER = '''
import json, os, pathlib, sys, time
from kpt_tf import cli

def main(argv):
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    try:
        print("worker up", flush=True)
        time.sleep(60)
    finally:
        pathlib.Path(sys.argv[1], f"worker{index}").write_text("stopped")

cli.run(main, "worker")
'''
launch.worker_command = lambda args: [sys.executable, "-c", WORKER, *args]
launch.define_flags()
cli.run(launch.main, "kpt_tf.launch")
"""


def test_sigterm_to_the_launcher_stops_every_worker_and_waits_for_them(tmp_path):
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-c", LAUNCHED, "--workers", "2", "--grace_seconds", "20", "--",
                             str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = 0
    deadline = time.time() + 60
    while seen < 2 and time.time() < deadline:
        seen += proc.stdout.readline().startswith(("[worker 0] worker up", "[worker 1] worker up"))
    proc.send_signal(signal.SIGTERM)
    out, _ = communicate_or_show_signal_state(proc, 60)
    assert proc.returncode == 143, out
    assert "[launch] interrupted: stopping the other workers" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["worker0", "worker1"]     # both ran their finally


def test_importing_a_module_defines_no_command_line_flag():
    """absl flags are global: a module that defines its flags at import collides with any other of the same name
    imported into the same process (a test worker importing kpt_tf.grouping.__main__ and tools.real_photos_figure
    failed with DuplicateFlagError on `--out`, CI 2026-12-07). Programs define theirs in `define_flags()`, called
    under `__main__`. Bench scripts are programs only, never imported, and are left out."""
    script = (
        "import importlib, pkgutil, sys\n"
        "import kpt_tf, tensorflow\n"
        "from absl import flags\n"
        "before = set(flags.FLAGS)\n"
        "import data_prep, tools\n"
        "for package in (kpt_tf, data_prep, tools):\n"
        "    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(set(flags.FLAGS) - before))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:]

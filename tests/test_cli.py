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

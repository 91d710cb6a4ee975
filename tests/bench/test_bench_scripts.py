"""The benchmark scripts run at tiny sizes so they cannot rot (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_train_vs_pytorch_runs_tiny():
    done = subprocess.run([sys.executable, "-m", "bench.train_vs_pytorch", "--tiny"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "kpt_tf vs the faster PyTorch layout" in done.stdout and "inference batch 1" in done.stdout

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


@pytest.mark.slow
def test_fpd_cost_table_runs_tiny(trained_workdir, embedded_records, tmp_path):
    from kpt_tf.training import loop
    from tests.conftest import tiny_train_config

    loop.train(tiny_train_config(embedded_records, epochs=1, steps=2, channels=8, stacks=1), tmp_path / "student",
               verbose=0)
    done = subprocess.run([sys.executable, "-m", "bench.fpd", "--teacher", str(trained_workdir), "--student",
                           str(tmp_path / "student"), "--repeats", "2", "--batch_sizes", "1,4", "--image_size", "96"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = {line.split("  ")[0]: line for line in done.stdout.splitlines()}
    assert "latency, batch 4 (ms)" in lines and "GFLOPs per image" in lines and "goal" in done.stdout
    assert "2 x 16" in lines["network"] and "1 x 8" in lines["network"]


@pytest.mark.slow
def test_serving_memory_runs_tiny():
    done = subprocess.run([sys.executable, "-m", "bench.serving_memory", "--sizes", "600", "--repeats", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "peak growth MB" in done.stdout and "600 x 600" in done.stdout


@pytest.mark.slow
def test_sync_bn_trace_runs_tiny():
    # Only the project's BN and the smallest network: Keras' synchronized BN alone takes minutes to trace.
    done = subprocess.run([sys.executable, "-m", "bench.sync_bn_trace", "--sizes", "1x1", "--bn", "kpt_tf",
                           "--channels", "8", "--steps", "1", "--timeout", "300"],
                          cwd=REPO, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| 1x1 | 26 |" in done.stdout and "not finished" not in done.stdout, done.stdout

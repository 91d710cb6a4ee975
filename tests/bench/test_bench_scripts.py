"""The benchmark scripts run at tiny sizes so they cannot rot (no timing is asserted)."""

from __future__ import annotations

import os
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
def test_optimizer_update_runs_tiny():
    done = subprocess.run([sys.executable, "-m", "bench.optimizer_update", "--tiny", "--batch_size", "2",
                           "--optimizers", "rmsprop"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| rmsprop |" in done.stdout and "machine:" in done.stdout, done.stdout


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


TINY_NET = ["--config", "configs/demo.py", "--config.model.num_stacks=1", "--config.model.channels=8",
            "--config.model.depth=1", "--config.model.input_size=64"]


@pytest.mark.slow
def test_train_step_runs_tiny_with_both_precisions_and_the_input_wait():
    done = subprocess.run([sys.executable, "-m", "bench.train_step", *TINY_NET, "--batch_size", "2", "--steps", "1",
                           "--warmup", "1", "--modes", "off", "--precisions", "fp32,mixed", "--input_people", "8",
                           "--matmul_sizes", "128", "--matmul_repeats", "1", "--profile_steps", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "| demo | off | fp32 |" in out and "| demo | off | mixed |" in out, out
    assert "waits for input" in out and "Op time by kind, XLA off, fp32" in out, out


def test_train_step_on_a_gpu_without_one_refuses_clearly():
    done = subprocess.run([sys.executable, "-m", "bench.train_step", "--device", "gpu"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode != 0
    assert "--device gpu, but TensorFlow sees no GPU" in done.stderr, done.stderr[-2000:]


@pytest.mark.slow
def test_deploy_table_runs_tiny():
    done = subprocess.run([sys.executable, "-m", "bench.deploy", "--tiny"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("tiny")]
    assert [r[1] for r in rows] == ["savedmodel", "tflite_none", "tflite_dynamic"] and rows[0][3] == "1.00"


@pytest.mark.slow
def test_predict_video_table_runs_tiny():
    done = subprocess.run([sys.executable, "-m", "bench.predict_video", "--tiny"], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line.split()[0] for line in done.stdout.splitlines() if line.startswith(("hog ", "none "))] == \
        ["hog", "none"] and "network alone on the 10 whole-frame people" in done.stdout


def test_kptransfer_carries_finished_runs_out_and_prints_a_recorded_table(tmp_path):
    import json

    from kpt_tf import workdir as wd

    run = tmp_path / "bench" / "step1_lower" / "random" / "seed0"       # a finished run's files (contents unread)
    run.mkdir(parents=True)
    for name in (wd.CONFIG, wd.METRICS_CSV, wd.TRAIN_SUMMARY, wd.BEST_MODEL):
        (run / name).write_text(json.dumps({"file": name}))
    done = subprocess.run([sys.executable, "-m", "bench.kptransfer", "--workdir", str(tmp_path / "bench"),
                           "--carry", str(tmp_path / "carried"), "--carry_only"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 finished run(s) recorded" in done.stdout and "step1_lower/random/seed0" in done.stdout
    carried = tmp_path / "carried" / "step1_lower" / "random" / "seed0"
    assert sorted(p.name for p in carried.iterdir()) == sorted([wd.CONFIG, wd.METRICS_CSV, wd.TRAIN_SUMMARY])

    published = REPO / "docs" / "results" / "kptransfer_bench_36ep" / "results.json"
    shown = subprocess.run([sys.executable, "-m", "bench.kptransfer", "--results", str(published)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "upper -> lower  (seeds [0, 1, 2]; random's final mean PCKh@0.5 71.86)" in shown.stdout

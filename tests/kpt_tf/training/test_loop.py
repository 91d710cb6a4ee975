"""Training with model.fit: the CLI's dry run, a real run's workdir, learning, MirroredStrategy + XLA."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO, TRAINED_EPOCHS, tiny_train_config


def run_module(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_dry_run_prints_params_flops_and_joints_as_last_line():
    done = run_module("kpt_tf.train", "--config", "configs/hg2_256.py", "--config.joints=upper", "--dry_run")
    assert done.returncode == 0, done.stderr[-2000:]
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert last["joints"] == ["thorax", "upper_neck", "head_top", "right_wrist", "right_elbow",
                              "right_shoulder", "left_shoulder", "left_elbow", "left_wrist"]
    assert 6.5e6 < last["params"] < 6.8e6
    assert last["flops_per_image"] > 1e9
    assert "stem_conv" in done.stdout  # the summary came first


def test_train_cli_refuses_missing_config():
    done = run_module("kpt_tf.train", "--workdir", "/tmp/x", timeout=120)
    assert done.returncode != 0 and "--config is required" in done.stderr


@pytest.mark.slow
def test_training_run_writes_a_complete_workdir(trained_workdir):
    """The shared tiny run (tests/conftest.trained_workdir: two epochs, two stacks) left every file of a workdir."""
    run = trained_workdir
    for name in ("config.json", "best.keras", "final.keras", "train_summary.json", "metrics.csv",
                 "checkpoints/best.weights.h5"):
        assert (run / name).exists(), name
    assert not (run / "backup").exists()            # removed once training completed
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(TRAINED_EPOCHS))
    for column in ("loss", "loss_stack1", "loss_stack2", "val_pckh_mean", "val_pckh01_mean",
                   "val_pckh_left_wrist", "learning_rate"):
        assert column in rows[0], column
    summary = json.loads((run / "train_summary.json").read_text())
    assert len(summary["history"]) == TRAINED_EPOCHS and summary["history"][-1]["per_joint"].keys() >= {"head_top"}
    events = list((run / "tensorboard").rglob("events.out.tfevents*"))
    assert any("validation_images" in str(e) for e in events) and any("train" in str(e) for e in events)


@pytest.mark.slow
def test_overfits_a_handful_of_crops(tmp_path):
    """A few hundred steps on 8 crops, scored on the same crops: PCKh must climb far above its start. One stack
    (half the seconds of two): 14.5 -> 90.0 against the mean pose's 21.8 (2026-12-07, Intel host)."""
    from data_prep.embedded import ensure_embedded_dataset
    from kpt_tf.evaluate import mean_pose_baseline
    from kpt_tf.training import loop

    records = ensure_embedded_dataset(tmp_path / "handful", num_train=8, num_val=8, seed=3, input_size=64,
                                      num_workers=2, progress=False)
    config = tiny_train_config(records, epochs=6, steps=50, channels=32, stacks=1)
    config.data.val_split = "train"          # score on the crops it trains on
    config.augment.rotation_prob, config.augment.flip = 0.0, False
    config.augment.scale_min = config.augment.scale_max = 1.0
    config.augment.color_min = config.augment.color_max = 1.0
    config.train.learning_rate = 2.5e-3
    summary = loop.train(config, tmp_path / "run", verbose=0)
    curve = [h["mean"] for h in summary["history"]]
    baseline = mean_pose_baseline(config, split="train")["mean"]
    assert curve[-1] > max(60.0, baseline + 25.0), (curve, baseline)
    assert curve[-1] > curve[0] + 20.0, curve


MIRRORED_XLA = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    from kpt_tf.training.distribute import configure_cpu_replicas
    configure_cpu_replicas(2)
    import keras
    from configs.base import add_section
    from tests.conftest import tiny_train_config
    from kpt_tf.training import loop

    class ReplicaCheck(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            worst, count = 0.0, 0
            for v in self.model.net.weights:
                values = [np.asarray(x.numpy()) for x in getattr(v.value, "values", [v.value])]
                if len(values) < 2:
                    continue
                count += 1
                worst = max(worst, max(float(np.max(np.abs(values[0] - x))) for x in values[1:]))
            sync = [l.synchronized for l in self.model.net.layers if isinstance(l, keras.layers.BatchNormalization)]
            self.result = {"mirrored": count, "max_diff": worst, "synchronized_bn": all(sync) and bool(sync),
                           "replicas": self.model.distribute_strategy.num_replicas_in_sync}

    records, workdirs, teacher = sys.argv[1], sys.argv[2], sys.argv[3]
    for case in sys.argv[4:]:            # one process for every case: the logical CPUs are set before TF starts
        xla, trainer = case.split("-")
        # 1 stack of depth 1: tracing synchronized BN's all-reduce gradient walks the whole graph once per BN layer
        # (TF's graph-mode custom_gradient), so its cost grows with the square of the network (BUILD_NOTES)
        config = tiny_train_config(records, epochs=1, steps=4, stacks=1, depth=1)
        config.train.num_cpu_replicas = 2
        config.train.xla = xla
        if trainer == "distill":        # FPD's student and frozen teacher in the same step
            config.train.trainer = "distill"
            add_section(config, "distill", dict(teacher=teacher, alpha=0.5, kd_on_all_joints=False, init_student=""))
        check, run = ReplicaCheck(), f"{workdirs}/{case}"
        summary = loop.train(config, run, extra_callbacks=[check], verbose=0)
        kd = [k for k in __import__("csv").DictReader(open(run + "/metrics.csv"))][0].get("loss_kd")
        print("CASE " + json.dumps({"case": case, "check": check.result, "summary": {
            "xla": summary["xla"], "replicas": summary["replicas"], "trainer": summary["trainer"],
            "loss_kd": kd is not None}}), flush=True)
""")
MIRRORED_CASES = ("on-pose", "off-pose", "on-distill")


@pytest.fixture(scope="module")
def mirrored_runs(embedded_records, trained_workdir, tmp_path_factory) -> dict:
    """The three 2-replica runs, trained in one process (each process pays TF's start and the replica set-up)."""
    done = subprocess.run([sys.executable, "-c", MIRRORED_XLA, str(embedded_records),
                           str(tmp_path_factory.mktemp("mirrored")), str(trained_workdir), *MIRRORED_CASES],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    cases = [json.loads(line[5:]) for line in done.stdout.splitlines() if line.startswith("CASE ")]
    return {"done": done, **{c["case"]: c for c in cases}}


@pytest.mark.slow
@pytest.mark.parametrize("case", MIRRORED_CASES)
def test_mirrored_strategy_two_cpus_keeps_replicas_identical(mirrored_runs, case):
    """2 logical CPUs: weights and BN moving statistics identical on both replicas after training.

    XLA on: per-replica BN inside the compiled step, moving statistics averaged after it; XLA off:
    synchronized BN. `distill`: FPD's student and frozen teacher in the same compiled step."""
    done = mirrored_runs["done"]
    assert case in mirrored_runs, f"exit {done.returncode}: " + done.stderr[-3000:]
    xla, trainer = case.split("-")
    check, summary = mirrored_runs[case]["check"], mirrored_runs[case]["summary"]
    assert summary == {"xla": xla == "on", "replicas": 2, "trainer": trainer, "loss_kd": trainer == "distill"}
    assert check["replicas"] == 2 and check["synchronized_bn"] == (xla == "off") and check["mirrored"] > 50
    assert check["max_diff"] == 0.0, check


@pytest.mark.slow
def test_validation_reports_visible_and_occluded_joints_apart(trained_workdir):
    """The embedded records carry occlusion: every epoch logs PCKh of the visible and the occluded joints."""
    import csv

    summary = json.loads((trained_workdir / "train_summary.json").read_text())
    last = summary["history"][-1]
    assert last["mean_visible"] is not None and last["mean_occluded"] is not None
    assert set(last["per_joint_occluded"]) == set(last["per_joint"])
    row = next(csv.DictReader(open(trained_workdir / "metrics.csv")))
    assert {"val_pckh_visible_mean", "val_pckh_occluded_mean"} <= set(row)


@pytest.mark.parametrize("key,value,message", [
    ("epochs", 0, "train.epochs = 0: must be a whole number >= 1"),
    ("epochs", -3, "train.epochs = -3"),
    ("steps_per_epoch", -5, "train.steps_per_epoch = -5: must be a whole number >= 0"),
    ("batch_size", 0, "train.batch_size = 0"),
    ("learning_rate", float("nan"), "train.learning_rate = nan: must be a finite number > 0"),
    ("learning_rate", 0.0, "train.learning_rate = 0.0"),
])
def test_a_schedule_that_would_train_nothing_is_refused_before_anything_is_written(embedded_records, tmp_path, key,
                                                                                   value, message):
    from kpt_tf.training import loop

    config = tiny_train_config(embedded_records)
    config.train[key] = value
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        loop.train(config, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_the_training_stream_warps_with_the_configured_warp(embedded_records):
    """`data.warp` reaches the training stream: the same augmented people (identical joints), each warp's pixels."""
    import numpy as np

    from kpt_tf.data import pipeline
    from kpt_tf.data.augment import TRAINING_WARP
    from kpt_tf.data.records import config_subset
    from kpt_tf.training import loop

    config = tiny_train_config(embedded_records)
    config.train.deterministic = True
    subset = config_subset(config)
    assert config.data.warp == TRAINING_WARP
    streams = {}
    for warp in ("cv2", "xla"):
        config.data.warp = warp
        images, targets = next(iter(loop.training_dataset(config, subset)))
        options = pipeline.StreamOptions(
            batch_size=config.train.batch_size, training=True, input_size=config.model.input_size,
            augment=loop.augment_from_config(config), seed=config.train.seed, deterministic=True,
            shuffle_buffer=config.data.shuffle_buffer, warp=warp)
        alone = next(iter(pipeline.make_dataset(config.data.dir, config.data.train_split, subset, options)))[0]
        np.testing.assert_array_equal(images.numpy(), alone.numpy())
        streams[warp] = images.numpy().astype(int), targets["joints"].numpy()
    np.testing.assert_array_equal(streams["cv2"][1], streams["xla"][1])
    assert 0 < np.abs(streams["cv2"][0] - streams["xla"][0]).mean() < 1.5     # the warps differ by grey levels


def test_an_unknown_warp_is_refused_before_anything_is_written(embedded_records, tmp_path):
    from kpt_tf.training import loop

    config = tiny_train_config(embedded_records)
    config.data.warp = "bicubic"
    with pytest.raises(ValueError, match=r"config data.warp = 'bicubic': must be one of xla, cv2, projective_tr"):
        loop.train(config, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()


def test_a_split_with_no_record_is_refused_before_anything_is_written(embedded_records, tmp_path):
    """The real annotation file converted with only a few of its images present writes 0 training people: training
    on that ran on nothing (NaN loss, an untrained best.keras, exit 0) before it was refused."""
    import shutil

    from kpt_tf.training import loop

    records = tmp_path / "records"
    records.mkdir()
    for shard in embedded_records.glob("val-*.tfrecord"):
        shutil.copy(shard, records / shard.name)
    (records / "train-00000-of-00001.tfrecord").write_bytes(b"")     # a valid shard of no record
    config = tiny_train_config(records)
    with pytest.raises(ValueError, match="its 'train' split holds 0 records"):
        loop.train(config, tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()

"""The training loop as a library call: `train(config, workdir)` (CLI, demo and experiments use it)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import ml_collections
import tensorflow as tf

from kpt_tf.codec import HeatmapCodec
from kpt_tf.data import pipeline
from kpt_tf.joints import JointSubset
from kpt_tf.models import build_net, net_from_config
from kpt_tf.models.flops import flops_per_image
from kpt_tf.models.hourglass import trainable_parameter_count
from kpt_tf.training import callbacks as cb
from kpt_tf.training.distribute import make_strategy, resolve_xla
from kpt_tf.training.trainer import PoseTrainer

INIT_MODEL = "init.keras"      # written by kpt_tf.transfer: the starting weights of a fine-tuning run
BEST_WEIGHTS = "checkpoints/best.weights.h5"


def codec_from_config(config) -> HeatmapCodec:
    size = int(config.model.input_size)
    return HeatmapCodec(input_size=size, heatmap_size=size // 4, sigma=float(config.codec.sigma))


def augment_from_config(config) -> pipeline.AugmentConfig:
    return pipeline.AugmentConfig(**config.augment.to_dict())


def dry_run(config) -> dict:
    subset = JointSubset.parse(config.joints)
    net = build_net(config, subset)
    net.summary(line_length=110)
    return {"params": trainable_parameter_count(net),
            "flops_per_image": int(flops_per_image(net)), "joints": list(subset.names)}


def make_optimizer(config, steps_per_epoch: int):
    t = config.train
    boundaries = [int(e) * steps_per_epoch for e in t.lr_drop_epochs if int(e) < int(t.epochs)]
    values = [float(t.learning_rate) * float(t.lr_drop_factor) ** i for i in range(len(boundaries) + 1)]
    schedule = (keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
                if boundaries else float(t.learning_rate))
    name = str(t.optimizer).lower()
    if name == "rmsprop":   # bearpaw/pytorch-pose: RMSprop, no momentum, PyTorch's eps
        return keras.optimizers.RMSprop(schedule, rho=0.99, epsilon=1e-8)
    if name == "adam":      # HRNet/FPD
        return keras.optimizers.Adam(schedule)
    raise ValueError(f"config train.optimizer must be rmsprop or adam, not {t.optimizer!r}")


def _steps_per_epoch(config, train_count: int) -> int:
    if int(config.train.steps_per_epoch) > 0:
        return int(config.train.steps_per_epoch)
    steps = train_count // int(config.train.batch_size)
    if steps < 1:
        raise ValueError(f"the training split has {train_count} records, fewer than one batch of "
                         f"{config.train.batch_size}")
    return steps


def save_config(config, workdir: Path) -> None:
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=1))


def load_config(workdir) -> ml_collections.ConfigDict:
    path = Path(workdir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config.json; is {workdir} a kpt_tf training workdir?")
    return ml_collections.ConfigDict(json.loads(path.read_text()))


def train(config, workdir, extra_callbacks=(), verbose: int = 2) -> dict:
    """Train per `config` into `workdir`; returns a summary with the per-epoch history."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t = config.train
    if not config.data.dir:
        raise ValueError("config data.dir is empty: point it at a TFRecord directory "
                         "(--config.data.dir=...) written by data_prep.mpii_to_tfrecord")
    keras.utils.set_random_seed(int(t.seed))
    if t.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(int(t.num_cpu_replicas))
    xla = resolve_xla(t.xla)
    if t.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    subset = JointSubset.parse(config.joints)
    codec = codec_from_config(config)
    train_count = pipeline.count_records(config.data.dir, config.data.train_split)
    steps = _steps_per_epoch(config, train_count)
    save_config(config, workdir)

    # Synchronized BN needs cross-replica communication inside the forward pass, which the XLA
    # per-replica function cannot contain; the trainer averages moving statistics instead (trainer.py).
    synchronized = strategy.num_replicas_in_sync > 1 and not xla
    with strategy.scope():
        init_path = workdir / INIT_MODEL
        if init_path.exists():
            net = net_from_config(config, subset, synchronized, weights_from=init_path)
        else:
            net = build_net(config, subset, synchronized_bn=synchronized)
        trainer = PoseTrainer(net, codec, xla=xla)
        trainer.compile(optimizer=make_optimizer(config, steps))
        # Built model and optimizer before fit: BackupAndRestore restores into existing variables.
        size = int(config.model.input_size)
        trainer(tf.zeros([1, size, size, 3]))
        trainer.optimizer.build(net.trainable_variables)

    train_ds = pipeline.make_dataset(
        config.data.dir, config.data.train_split, subset, batch_size=int(t.batch_size), training=True,
        input_size=int(config.model.input_size), augment=augment_from_config(config), seed=int(t.seed),
        deterministic=bool(t.deterministic), shuffle_buffer=int(config.data.shuffle_buffer))
    val_ds = pipeline.make_dataset(
        config.data.dir, config.data.val_split, subset, batch_size=max(int(t.batch_size), 8), training=False,
        input_size=int(config.model.input_size), with_meta=True)

    validation = cb.ValidationPCKh(net, val_ds, codec, subset, flip_test=bool(t.flip_test),
                                   max_people=int(config.data.val_max_people),
                                   log_dir=str(workdir / "tensorboard"),
                                   skeleton_images=int(t.skeleton_images))
    (workdir / "checkpoints").mkdir(exist_ok=True)
    callbacks = [
        validation,  # first: the callbacks below read the PCKh it adds to the epoch logs
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.ModelCheckpoint(str(workdir / BEST_WEIGHTS), monitor="val_pckh_mean", mode="max",
                                        save_best_only=True, save_weights_only=True),
        keras.callbacks.BackupAndRestore(str(workdir / "backup")),
        keras.callbacks.CSVLogger(str(workdir / "metrics.csv"), append=True),
        keras.callbacks.TensorBoard(str(workdir / "tensorboard"), write_graph=False, profile_batch=0),
        *extra_callbacks,
    ]
    started = time.time()
    trainer.fit(train_ds, epochs=int(t.epochs), steps_per_epoch=steps, callbacks=callbacks, shuffle=False,
                verbose=verbose)
    seconds = time.time() - started

    net.save(workdir / "final.keras")
    best = workdir / BEST_WEIGHTS
    if best.exists():
        trainer.load_weights(best)
    net.save(workdir / "best.keras")
    summary = {
        "workdir": str(workdir), "joints": list(subset.names), "epochs": int(t.epochs),
        "steps_per_epoch": steps, "replicas": strategy.num_replicas_in_sync, "xla": xla,
        "seconds": round(seconds, 1), "best_val_pckh_mean": validation.best,
        "final_val_pckh_mean": validation.last_mean, "history": validation.history,
    }
    (workdir / "train_summary.json").write_text(json.dumps(summary, indent=1))
    return summary

r"""The optimizer update of a training step: Keras 3's optimizers (about ten element-wise ops per variable) against
`kpt_tf.training.optimizers` (TF's fused kernel, one op per variable), in one process.

For each optimizer (`--optimizers`) and each implementation, the config's network is built and compiled in
`PoseTrainer` as `kpt_tf.training.loop.train` does (same learning rate, same slot settings), then fed one synthetic
batch: "first step" is the first call of Keras' train function (tracing the step, then running it: what every run
pays at its start), "step" the median of --steps calls, the implementations alternating step by step so other
load slows both alike. Ratios > 1 mean the fused update is faster.

    .venv/bin/python -m bench.optimizer_update                       # hg2_256 (256 px, batch 8)
    .venv/bin/python -m bench.optimizer_update --config configs/demo.py --batch_size 16
    .venv/bin/python -m bench.optimizer_update --tiny                # seconds: what CI runs so it cannot rot
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import keras
import tensorflow as tf
from absl import flags
from ml_collections import config_flags

from bench.machine import cpu_model
from bench.synthetic import synthetic_batch
from kpt_tf import cli
from kpt_tf.joints import JointSubset
from kpt_tf.models import build_net, codec_from_config
from kpt_tf.training import optimizers
from kpt_tf.training.loop import make_schedule
from kpt_tf.training.settings import run_settings
from kpt_tf.training.trainer import PoseTrainer

REPO = Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS

# name -> (Keras' class, ours, the arguments `kpt_tf.training.loop.make_optimizer` gives both)
OPTIMIZERS = {
    "rmsprop": (keras.optimizers.RMSprop, optimizers.RMSprop, dict(rho=0.99, epsilon=1e-8)),
    "adam": (keras.optimizers.Adam, optimizers.Adam, {}),
    "sgd": (keras.optimizers.SGD, optimizers.SGD, dict(momentum=0.9)),
}


def define_flags():
    config_flags.DEFINE_config_file("config", str(REPO / "configs" / "hg2_256.py"), "Training config file.")
    flags.DEFINE_integer("batch_size", 8, "Batch of the timed steps.")
    flags.DEFINE_integer("steps", 10, "Timed steps per implementation (after the first).")
    flags.DEFINE_list("optimizers", list(OPTIMIZERS), "Optimizers to compare.")
    flags.DEFINE_bool("tiny", False, "A 1-stack, 8-channel, depth-1 network at 64 px, 1 timed step: seconds.")


def build(config, optimizer_class, kwargs):
    with run_settings(0):
        net = build_net(config, JointSubset.parse(config.joints))
        trainer = PoseTrainer(net, codec_from_config(config), xla=False)
        trainer.compile(optimizer=optimizer_class(make_schedule(config, 100), **kwargs))
        # as `fit` does before its first step (unbuilt, the first call traces twice: variables made in the trace)
        trainer.optimizer.build(trainer.trainable_variables)
        trainer.make_train_function()
    return trainer


def step(trainer, iterator) -> float:
    start = time.perf_counter()
    float(trainer.train_function(iterator)["loss"])     # reading the loss back waits for the whole step
    return time.perf_counter() - start


def compare(config, name: str, batch, steps: int) -> dict:
    keras_class, fused_class, kwargs = OPTIMIZERS[name]
    runs = {}
    for label, cls in (("keras", keras_class), ("fused", fused_class)):
        trainer = build(config, cls, kwargs)
        iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
        runs[label] = dict(trainer=trainer, iterator=iterator, first=step(trainer, iterator), steps=[])
    for run in runs.values():
        # untimed: building (seeding) the second trainer makes the first one's train function trace again once
        step(run["trainer"], run["iterator"])
    for _ in range(steps):
        for run in runs.values():
            run["steps"].append(step(run["trainer"], run["iterator"]))
    return {label: dict(first=run["first"], step=statistics.median(run["steps"])) for label, run in runs.items()}


def main(argv):
    config = FLAGS.config
    steps = FLAGS.steps
    if FLAGS.tiny:
        with config.unlocked():
            config.model.num_stacks, config.model.channels, config.model.depth = 1, 8, 1
            config.model.input_size = 64
        steps = 1
    size, joints = int(config.model.input_size), len(JointSubset.parse(config.joints).names)
    batch = synthetic_batch(FLAGS.batch_size, size, joints, seed=0)
    print(f"machine: {cpu_model()}; network: {config.model.num_stacks} x {config.model.channels}, depth "
          f"{config.model.depth}, {size} px, batch {FLAGS.batch_size}; {steps} timed steps each, alternating")
    print("| optimizer | first step Keras | first step fused | ratio | step Keras | step fused | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in FLAGS.optimizers:
        if name not in OPTIMIZERS:
            raise ValueError(f"--optimizers: unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
        r = compare(config, name, batch, steps)
        k, f = r["keras"], r["fused"]
        print(f"| {name} | {k['first']:.2f} s | {f['first']:.2f} s | {k['first'] / f['first']:.2f}x | "
              f"{1000 * k['step']:.1f} ms | {1000 * f['step']:.1f} ms | {k['step'] / f['step']:.2f}x |", flush=True)


if __name__ == "__main__":
    define_flags()
    cli.run(main, "bench.optimizer_update")

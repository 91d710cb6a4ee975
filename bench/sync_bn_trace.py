r"""Time to the first training step under MirroredStrategy with synchronized BatchNormalization: Keras'
synchronized BN against the project's (kpt_tf.models.blocks.FusedBatchNorm), by network size.

Each measurement runs in its own process (a MirroredStrategy over --replicas logical CPUs, the strategy
`kpt_tf.train` uses on CPUs: all-reduce through the host): the hourglass is built with synchronized BN
exactly as `kpt_tf.training.loop` builds it for several replicas without XLA, wrapped in `PoseTrainer`,
compiled with the config's optimizer, and fed one synthetic global batch. "first step" is the first call of
Keras' train function (tracing the distributed step, then running it); "step" the median of the next
--steps calls. A measurement that does not finish within --timeout seconds is reported as such.

Keras' synchronized BN all-reduces through `ReplicaContext.all_reduce`, whose graph-mode custom gradient
walks back through every op upstream of the other replicas' inputs, once per BN layer: its first step grows
with the square of the network. The project's all-reduce stops that walk (blocks.py).

    .venv/bin/python -m bench.sync_bn_trace
    .venv/bin/python -m bench.sync_bn_trace --sizes 1x1,1x2,2x2 --timeout 300
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from absl import flags

REPO = Path(__file__).resolve().parents[1]

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["1x1", "1x2", "2x2", "2x4"], "Networks as STACKSxDEPTH (hourglass depth).")
flags.DEFINE_integer("channels", 32, "Hourglass width.")
flags.DEFINE_integer("input_size", 64, "Input crop size.")
flags.DEFINE_integer("batch_size", 8, "Global batch (split across the replicas).")
flags.DEFINE_integer("replicas", 2, "Logical CPU replicas.")
flags.DEFINE_integer("steps", 3, "Timed steps after the first.")
flags.DEFINE_integer("timeout", 600, "Seconds one measurement may take before it is reported as not finished.")
flags.DEFINE_list("bn", ["keras", "kpt_tf"], "Synchronized BN implementations to time.")
flags.DEFINE_string("child", None, "Internal: run one measurement, given as BN:STACKSxDEPTH.")


def measure(bn: str, stacks: int, depth: int) -> dict:
    """One measurement, in this process (a fresh one: the CPU is split into replicas before TF starts)."""
    from kpt_tf.training.distribute import make_strategy
    strategy = make_strategy(FLAGS.replicas)

    import keras
    import tensorflow as tf

    from bench.synthetic import synthetic_batch
    from configs.base import base_config
    from kpt_tf.joints import JointSubset
    from kpt_tf.models import blocks, build_net, codec_from_config
    from kpt_tf.training.loop import make_optimizer
    from kpt_tf.training.trainer import PoseTrainer

    if bn == "keras":
        blocks.BATCH_NORM_LAYER = keras.layers.BatchNormalization
    config = base_config()
    config.model.num_stacks, config.model.depth = stacks, depth
    config.model.channels, config.model.input_size = FLAGS.channels, FLAGS.input_size
    subset = JointSubset.parse(config.joints)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        net = build_net(config, subset, synchronized_bn=True)
        trainer = PoseTrainer(net, codec_from_config(config), xla=False)
        trainer.compile(optimizer=make_optimizer(config, 100))
        trainer(tf.zeros([1, FLAGS.input_size, FLAGS.input_size, 3]))
        trainer.optimizer.build(net.trainable_variables)
    bn_layers = [layer for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bn_layers and all(layer.synchronized for layer in bn_layers)
    batch = synthetic_batch(FLAGS.batch_size, FLAGS.input_size, len(subset), seed=0)
    iterator = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch).repeat()))
    trainer.make_train_function()
    started = time.perf_counter()
    float(trainer.train_function(iterator)["loss"])
    first = time.perf_counter() - started
    times = []
    for _ in range(FLAGS.steps):
        started = time.perf_counter()
        float(trainer.train_function(iterator)["loss"])
        times.append(time.perf_counter() - started)
    return {"bn_layers": len(bn_layers), "first_step_s": first, "step_s": statistics.median(times)}


def run_child(bn: str, stacks: int, depth: int) -> dict:
    argv = [sys.executable, "-m", "bench.sync_bn_trace", f"--child={bn}:{stacks}x{depth}",
            f"--channels={FLAGS.channels}", f"--input_size={FLAGS.input_size}", f"--batch_size={FLAGS.batch_size}",
            f"--replicas={FLAGS.replicas}", f"--steps={FLAGS.steps}"]
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=FLAGS.timeout)
    except subprocess.TimeoutExpired:
        return {"timeout": True, "seconds": time.perf_counter() - started}
    if done.returncode != 0:
        raise SystemExit(f"bench/sync_bn_trace.py: {bn} {stacks}x{depth} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_size(text: str) -> tuple[int, int]:
    try:
        stacks, depth = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"bench/sync_bn_trace.py: --sizes entry {text!r} is not STACKSxDEPTH (e.g. 2x4)") from None
    return stacks, depth


def main(argv):
    del argv
    if FLAGS.child:
        bn, size = FLAGS.child.split(":")
        print(json.dumps(measure(bn, *parse_size(size))))
        return
    sizes = [parse_size(s) for s in FLAGS.sizes]
    print(f"Synchronized BN, first training step: {FLAGS.replicas} CPU replicas (host all-reduce), width "
          f"{FLAGS.channels}, {FLAGS.input_size}-px input, global batch {FLAGS.batch_size}; timeout {FLAGS.timeout} s")
    rows = []
    for stacks, depth in sizes:
        row = {"size": f"{stacks}x{depth}"}
        for bn in FLAGS.bn:
            row[bn] = run_child(bn, stacks, depth)
            r = row[bn]
            shown = f"> {FLAGS.timeout} s (not finished)" if r.get("timeout") else \
                f"first step {r['first_step_s']:.1f} s, step {r['step_s']:.2f} s, {r['bn_layers']} BN layers"
            print(f"  {stacks} stack(s), depth {depth}, {bn}: {shown}", flush=True)
        rows.append(row)

    def cell(r):
        return f"> {FLAGS.timeout}" if r.get("timeout") else f"{r['first_step_s']:.1f}"

    print()
    head = " | ".join(f"{bn} first step (s)" for bn in FLAGS.bn)
    ratio = len(FLAGS.bn) == 2
    print(f"| network | BN layers | {head} |" + (f" {FLAGS.bn[0]} / {FLAGS.bn[1]} |" if ratio else "")
          + " step (s) |")
    print("|---|---|" + "---|" * len(FLAGS.bn) + ("---|" if ratio else "") + "---|")
    for row in rows:
        done = [row[bn] for bn in FLAGS.bn if not row[bn].get("timeout")]
        layers = done[0]["bn_layers"] if done else "?"
        cells = " | ".join(cell(row[bn]) for bn in FLAGS.bn)
        extra = ""
        if ratio:
            a, b = (row[bn] for bn in FLAGS.bn)
            extra = " n/a |" if b.get("timeout") else (
                f" > {FLAGS.timeout / b['first_step_s']:.1f}x |" if a.get("timeout")
                else f" {a['first_step_s'] / b['first_step_s']:.1f}x |")
        steps = " / ".join("-" if row[bn].get("timeout") else f"{row[bn]['step_s']:.2f}" for bn in FLAGS.bn)
        print(f"| {row['size']} | {layers} | {cells} |{extra} {steps} |")


if __name__ == "__main__":
    from kpt_tf import cli

    cli.run(main, "bench.sync_bn_trace")

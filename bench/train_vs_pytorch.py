r"""Training and inference speed of kpt_tf's hourglass against the same network in PyTorch, in one process.

    .venv/bin/python -m bench.train_vs_pytorch                 # hg2 x 256 at 256 px batch 8, and the demo network
    .venv/bin/python -m bench.train_vs_pytorch --networks demo # the demo network only (~4 minutes)
    .venv/bin/python -m bench.train_vs_pytorch --tiny          # seconds: what CI runs so the script cannot rot

Training: kpt_tf's real step (`PoseTrainer` through Keras' train function, targets rendered in the step, XLA per
`train.xla=auto`) against PyTorch's (forward, the same target-weighted MSE over stacks on precomputed targets,
backward, RMSprop with the same hyper-parameters; `torch.set_num_threads` = the cores; NCHW and channels-last),
on one batch held in memory, runs alternating step by step so other load slows all alike; median of the timed
steps after warm-up. Inference: the exported SavedModel's `heatmaps` endpoint (plain, and exported with `--xla`)
against the PyTorch model in eval mode under `torch.no_grad`, batch 1 and 32, timed in blocks: each candidate in
turn gets a pause, one untimed call and a block of timed calls, and the order rotates every round (not call by call:
the thread pools of the candidate before keep spinning into the next one's call, which cost the plain export ~15 %
of its batch-1 latency, BUILD_NOTES "Speed against PyTorch"). Ratios > 1 mean kpt_tf is faster. Needs PyTorch.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import kpt_tf  # noqa: F401  (first: it sets TF's start-up environment before TF loads: kpt_tf/__init__.py)

# isort: split
import keras
import numpy as np
import tensorflow as tf
import torch
from absl import app, flags

from kpt_tf.codec import HeatmapCodec
from kpt_tf.export import export_net
from kpt_tf.interop.torch_hourglass import HourglassNet
from kpt_tf.joints import JointSubset
from kpt_tf.models.hourglass import STEM_WIDTHS, build_hourglass
from kpt_tf.training import optimizers
from kpt_tf.training.distribute import resolve_xla
from kpt_tf.training.trainer import PoseTrainer
from kpt_tf.workdir import ExportOptions

flags.DEFINE_bool("tiny", False, "Tiny shapes and two steps (CI).")
flags.DEFINE_integer("steps", 10, "Timed training steps per framework.")
flags.DEFINE_integer("warmup", 3, "Untimed steps first.")
FLAGS = flags.FLAGS

# name: (stacks, channels, stem, input size, batch)
NETWORKS = {"hg2_256": (2, 256, "bearpaw", 256, 8), "demo": (2, 64, "scaled", 128, 16)}
flags.DEFINE_list("networks", list(NETWORKS), f"Networks to compare, of {', '.join(NETWORKS)} (ignored with --tiny).")
# Latency: batch size -> (rounds, timed calls per block); the pause lets the previous candidate's spinning threads
# (OpenMP's, TF's) go idle first.
LATENCY_PLAN, TINY_LATENCY_PLAN = {1: (4, 5), 32: (3, 2)}, {1: (1, 2), 2: (1, 2)}
LATENCY_PAUSE_S = 0.3
TINY = {"tiny": (1, 16, "scaled", 64, 2)}


def _median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _block_latency(calls: dict, rounds: int, per_block: int) -> dict:
    """Median seconds per call of each candidate, timed in blocks: every round each candidate in turn gets a pause,
    one untimed call and `per_block` timed calls; the order rotates every round, so each candidate follows every
    other alike and slower load over the run slows all of them alike."""
    keys, samples = list(calls), {k: [] for k in calls}
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            time.sleep(LATENCY_PAUSE_S)
            calls[k]()
            samples[k] += [_median_time(calls[k], 1) for _ in range(per_block)]
    return {k: statistics.median(v) for k, v in samples.items()}


def compare(name, stacks, channels, stem, size, batch, steps, warmup, latency_plan) -> dict:
    keras.utils.set_random_seed(0)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, size, size, 3)).astype(np.uint8)
    joints = rng.uniform(8, size - 8, (batch, 16, 2)).astype(np.float32)
    weights = np.ones((batch, 16), np.float32)
    codec = HeatmapCodec(size, size // 4, 2.0)

    net = build_hourglass(stacks, channels, 16, input_size=size, stem=stem)
    trainer = PoseTrainer(net, codec, xla=resolve_xla("auto"))
    trainer.compile(optimizer=optimizers.RMSprop(2.5e-4, rho=0.99, epsilon=1e-8))
    iterator = iter(tf.data.Dataset.from_tensors((images, {"joints": joints, "weights": weights})).repeat())
    trainer.make_train_function()

    def kpt_step():
        float(trainer.train_function(iterator)["loss"])

    targets, target_weights = (t.numpy() for t in codec.encode(joints, weights))
    torch_targets = torch.from_numpy(np.transpose(targets, (0, 3, 1, 2)).copy())
    torch_w = torch.from_numpy(target_weights)[:, :, None, None]
    torch_images = torch.from_numpy(np.transpose(images, (0, 3, 1, 2)).astype(np.float32) / 255.0)
    peers = {}
    for layout in ("nchw", "channels_last"):
        model = HourglassNet(stacks, 1, 16, channels, STEM_WIDTHS[stem](channels))
        x = torch_images
        if layout == "channels_last":
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer = torch.optim.RMSprop(model.parameters(), lr=2.5e-4, alpha=0.99, eps=1e-8)

        def torch_step(model=model, x=x, optimizer=optimizer):
            optimizer.zero_grad(set_to_none=True)
            loss = sum(((o - torch_targets) ** 2 * torch_w).mean() for o in model(x))
            loss.backward()
            optimizer.step()
            float(loss)

        peers[layout] = (model, x, torch_step)

    for _ in range(warmup):
        kpt_step()
        for _, _, step in peers.values():
            step()
    times = {"kpt_tf": [], "nchw": [], "channels_last": []}
    for _ in range(steps):
        times["kpt_tf"].append(_median_time(kpt_step, 1))
        for layout, (_, _, step) in peers.items():
            times[layout].append(_median_time(step, 1))
    train = {k: statistics.median(v) for k, v in times.items()}

    latency = {}
    with tempfile.TemporaryDirectory() as tmp:
        served = {key: tf.saved_model.load(str(export_net(net, codec, JointSubset.parse("all"), f"{tmp}/{key}",
                                                          ExportOptions(flip_test=False, xla=xla))))
                  for key, xla in (("kpt_tf", False), ("kpt_tf_xla", True))}
        for n, (rounds, per_block) in latency_plan.items():
            crops = tf.constant(np.resize(images, (n, size, size, 3)).astype(np.float32))
            calls = {key: lambda crops=crops, sm=sm: sm.heatmaps(crops).numpy() for key, sm in served.items()}
            for layout, (model, _, _) in peers.items():
                model.eval()
                x = torch.from_numpy(np.transpose(crops.numpy(), (0, 3, 1, 2)) / 255.0)
                if layout == "channels_last":
                    x = x.contiguous(memory_format=torch.channels_last)

                def call(model=model, x=x):
                    with torch.no_grad():
                        return model(x)[-1].numpy()

                calls[layout] = call
            for _ in range(3):   # both frameworks build their kernels for a new shape on the first calls
                for call in calls.values():
                    call()
            latency[n] = _block_latency(calls, rounds, per_block)
            for model, _, _ in peers.values():
                model.train()
    return {"name": name, "shape": f"{stacks}x{channels} {stem} stem, {size} px, batch {batch}", "train": train,
            "latency": latency}


def main(argv):
    del argv
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    unknown = sorted(set(FLAGS.networks) - set(NETWORKS))
    if unknown:
        raise app.UsageError(f"--networks: unknown {', '.join(unknown)}; known: {', '.join(NETWORKS)}")
    networks = TINY if FLAGS.tiny else {name: NETWORKS[name] for name in FLAGS.networks}
    steps, warmup = (2, 1) if FLAGS.tiny else (FLAGS.steps, FLAGS.warmup)
    latency_plan = TINY_LATENCY_PLAN if FLAGS.tiny else LATENCY_PLAN
    print(f"kpt_tf vs PyTorch {torch.__version__} (threads {torch.get_num_threads()}), TF {tf.__version__}, "
          f"Keras {keras.__version__}, XLA {'on' if resolve_xla('auto') else 'off'} (auto)")
    for name, shape in networks.items():
        r = compare(name, *shape, steps, warmup, latency_plan)
        t = r["train"]
        best_torch = min(t["nchw"], t["channels_last"])
        print(f"\n{r['name']}: {r['shape']}; training step, median of {steps}")
        print(f"  {'kpt_tf':<16}{t['kpt_tf']:>9.3f} s")
        print(f"  {'torch NCHW':<16}{t['nchw']:>9.3f} s   kpt_tf speed vs it {t['nchw'] / t['kpt_tf']:.2f}x")
        print(f"  {'torch ch-last':<16}{t['channels_last']:>9.3f} s   kpt_tf speed vs it "
              f"{t['channels_last'] / t['kpt_tf']:.2f}x")
        print(f"  kpt_tf vs the faster PyTorch layout: {best_torch / t['kpt_tf']:.2f}x")
        for n, row in r["latency"].items():
            best = min(row["nchw"], row["channels_last"])
            ms = {k: f"{v * 1e3:8.1f}" for k, v in row.items()}
            print(f"  inference batch {n:<3} kpt_tf {ms['kpt_tf']} ms (--xla {ms['kpt_tf_xla']})  torch {ms['nchw']} "
                  f"(ch-last {ms['channels_last']}) ms  kpt_tf speed vs the faster {best / row['kpt_tf']:.2f}x "
                  f"(--xla {best / row['kpt_tf_xla']:.2f}x)")


if __name__ == "__main__":
    from kpt_tf import cli

    cli.run(main, "bench.train_vs_pytorch")

r"""Training-step throughput of a config (default hg2_256) with XLA off and on, against the fp32 matmul peak.

One run measures, on this machine:

* the fp32 matmul peak: square `tf.matmul` of each --matmul_sizes inside a `tf.function`, 2 n^3 FLOPs each,
  best of --matmul_repeats before and after the training runs plus one of the largest size per training
  round; the best of all is the peak (other processes sharing the cores show up as spread between them);
* per XLA mode, the project's real training step: `PoseTrainer(net, codec, xla=...)` compiled with
  `make_optimizer(config, ...)` (RMSprop for hg2_256) exactly as `kpt_tf.training.loop.train` does, its
  Keras train function fed from one in-memory batch (`Dataset.from_tensors(batch).repeat()`);
  --warmup untimed steps (tracing, XLA compilation), then --steps steps timed one by one, the modes
  interleaved step by step so that load from other processes hits every mode alike;
* optionally (--profile_steps) a tf.profiler trace of a few more steps, summarised as op time by kind and
  convolution efficiency by feature-map resolution.

Achieved FLOP/s = images/s x 3 x forward FLOPs per image (`kpt_tf.models.flops.flops_per_image`: convolutions
and dense layers, 2 FLOPs per multiply-add); forward + backward is taken as 3x the forward (the backward pass
computes a gradient for the input and one for the weights, each about as costly as the forward).

    .venv/bin/python bench/train_step.py
    .venv/bin/python bench/train_step.py --modes off --steps 5 --profile_steps 0
"""

from __future__ import annotations

import collections
import gc
import glob
import math
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from keras import layers  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from bench.synthetic import synthetic_batch  # noqa: E402
from kpt_tf.joints import JointSubset  # noqa: E402
from kpt_tf.models import build_net, codec_from_config  # noqa: E402
from kpt_tf.models.flops import flops_per_image  # noqa: E402
from kpt_tf.training.loop import make_optimizer  # noqa: E402
from kpt_tf.training.trainer import PoseTrainer  # noqa: E402

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file("config", str(REPO / "configs" / "hg2_256.py"),
                                          "Training config file (configs/*.py).")
flags.DEFINE_integer("batch_size", 8, "Batch size of the timed training steps.")
flags.DEFINE_integer("steps", 10, "Timed training steps per mode.")
flags.DEFINE_integer("warmup", 3, "Untimed steps per mode first (tracing, XLA compilation); at least 1.")
flags.DEFINE_list("modes", ["off", "on"], "XLA modes to run, in order: off (TF graph + oneDNN), on (XLA).")
flags.DEFINE_list("matmul_sizes", ["2048", "4096"], "Square fp32 matmul sizes for the peak.")
flags.DEFINE_integer("matmul_repeats", 5, "Timed repeats per matmul size (the best one counts).")
flags.DEFINE_integer("profile_steps", 2, "Steps per mode traced with tf.profiler for the op breakdown; 0 = none.")
flags.DEFINE_integer("seed", 0, "Seed of the weights and of the synthetic batch (same for every mode).")

# Forward + backward FLOPs as a multiple of the forward FLOPs (input gradient + weight gradient).
TRAIN_TO_FORWARD_FLOPS = 3


# --- machine and peak --------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_vector_isa() -> str:
    """The widest SIMD extensions the kernel reports (they set the FLOPs per cycle of the cores)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flag_line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    cpu_flags = set(flag_line.split(":", 1)[-1].split())
    wanted = ("avx512f", "avx512_bf16", "amx_tile", "avx2", "fma")
    return " ".join(f for f in wanted if f in cpu_flags) or "no AVX"


def make_matmul_timer(n: int):
    """A function timing one n x n fp32 matmul (seconds); traced and warmed up on creation."""
    @tf.function
    def product_sum(a, b):
        # The sum forces the whole product but copies only a scalar back to the host.
        return tf.reduce_sum(tf.matmul(a, b))

    a = tf.random.uniform([n, n], seed=1)
    b = tf.random.uniform([n, n], seed=2)
    product_sum(a, b).numpy()

    def timed() -> float:
        start = time.perf_counter()
        product_sum(a, b).numpy()
        return time.perf_counter() - start
    return timed


def matmul_gflops(n: int, seconds: float) -> float:
    return 2.0 * n ** 3 / seconds / 1e9


def matmul_peak(timers: dict, repeats: int) -> dict:
    """Best fp32 GFLOP/s per matmul size over `repeats` timings (2 n^3 FLOPs each)."""
    return {n: matmul_gflops(n, min(timer() for _ in range(repeats))) for n, timer in timers.items()}


# --- the training step -------------------------------------------------------------------------------

def build_trainer(config, xla: bool, steps_per_epoch: int, seed: int):
    """Net, trainer and optimizer as `kpt_tf.training.loop.train` builds them (single device)."""
    keras.utils.set_random_seed(seed)
    net = build_net(config, JointSubset.parse(config.joints))
    trainer = PoseTrainer(net, codec_from_config(config), xla=xla)
    trainer.compile(optimizer=make_optimizer(config, steps_per_epoch))
    trainer.make_train_function()
    return net, trainer


def run_step(trainer, iterator) -> float:
    """One training step through Keras' train function (what `fit` calls); returns the loss.

    Reading the loss back waits for the whole step: a tf.function returns only after all its stateful ops
    (optimizer and BN-statistics updates) ran.
    """
    logs = trainer.train_function(iterator)
    loss = float(logs["loss"])
    if not math.isfinite(loss):
        raise SystemExit(f"bench/train_step.py: training loss became {loss}; the timing would be meaningless")
    return loss


def time_modes(config, modes, batch, batch_size: int, warmup: int, steps: int, profile_steps: int, seed: int,
               matmul_timer) -> tuple[dict, list]:
    """Step times of every mode, the modes' timed steps interleaved (off, on, off, on, ...).

    Interleaving makes other processes on the shared cores slow every mode alike; one matmul of the
    largest peak size is timed in every round too, so the peak sees the same conditions. Returns the
    per-mode results and the per-round matmul seconds.
    """
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    runs = {}
    for mode in modes:
        net, trainer = build_trainer(config, mode == "on", warmup + steps + profile_steps, seed)
        iterator = iter(dataset)
        start = time.perf_counter()
        run_step(trainer, iterator)
        first_step = time.perf_counter() - start
        for _ in range(warmup - 1):
            run_step(trainer, iterator)
        runs[mode] = dict(net=net, trainer=trainer, iterator=iterator, first_step=first_step, step_seconds=[])
    matmul_seconds = []
    for _ in range(steps):
        for mode in modes:
            run = runs[mode]
            start = time.perf_counter()
            run_step(run["trainer"], run["iterator"])
            run["step_seconds"].append(time.perf_counter() - start)
        matmul_seconds.append(matmul_timer())
    results = {}
    for mode in modes:
        run = runs.pop(mode)
        seconds = run["step_seconds"]
        results[mode] = dict(first_step=run["first_step"], step_seconds=seconds,
                             images_per_second=batch_size * steps / sum(seconds),
                             best_images_per_second=batch_size / min(seconds),
                             outer_jit=bool(run["trainer"].jit_compile))
        if profile_steps:
            results[mode]["profile"] = profile_steps_of(run["net"], run["trainer"], run["iterator"], profile_steps)
        del run
        keras.backend.clear_session()
        gc.collect()
    return results, matmul_seconds


# --- profile -----------------------------------------------------------------------------------------

def _layer_of(op_name: str, layers_by_name: dict):
    """The network layer an op belongs to, from its name scope (`.../hg0_up4_res1_conv1_1/convolution:Op`)."""
    for component in op_name.split(":", 1)[0].split("/"):
        for candidate in (component, re.sub(r"_\d+$", "", component)):
            if candidate in layers_by_name:
                return layers_by_name[candidate]
    return None


def _kind(op_name: str, op_type: str, layer) -> str:
    if isinstance(layer, layers.Conv2D):
        if "BackpropFilter" in op_type:
            return "conv weight gradient (+ bias grad)"
        if "BackpropInput" in op_type:
            return "conv input gradient"
        if "Conv2D" in op_type or "Conv" in op_type:
            return "conv forward (+ bias)"
        return "conv other (bias add / grad)"
    if isinstance(layer, layers.BatchNormalization):
        return "batch norm fwd+bwd (moments, scale/shift)"
    if isinstance(layer, layers.ReLU):
        return "ReLU fwd+bwd"
    if isinstance(layer, layers.Add):
        return "residual/merge adds"
    if isinstance(layer, layers.UpSampling2D):
        return "nearest upsampling fwd+bwd"
    if isinstance(layer, layers.MaxPooling2D):
        return "max-pool fwd+bwd"
    if layer is not None:
        return f"other layers ({type(layer).__name__})"
    if "rm_sprop" in op_name or "rmsprop" in op_name.lower() or "adam" in op_name.lower():
        return "optimizer update"
    if op_type.startswith("AddN"):
        return "gradient accumulation (AddN)"
    return "loss, targets, metrics, other"


# XLA:CPU thunks (one per fused HLO computation) appear as events named like "dot.141", "convolution.7",
# "multiply_reduce_fusion.4" or "wrapped_reduce-window.3", without an op type.
_XLA_THUNK = re.compile(r"^[a-z][a-z0-9_\-]*(\.\d+)?$")


def _xla_kind(thunk_name: str) -> str:
    base = re.sub(r"\.\d+$", "", thunk_name).removeprefix("wrapped_")
    if base.startswith("convolution"):
        # Convolution thunks run asynchronously on the intra-op pool: the event covers only their launch.
        return "XLA convolution launches (3x3/7x7 convs and gradients; async, run time not traced)"
    if base.startswith("dot"):
        return "XLA dot (1x1 convs as matmuls and their gradients)"
    if "transpose" in base or base in ("copy", "bitcast_copy_fusion", "copy_fusion"):
        return "XLA transposes/copies (layout changes)"
    if "reduce-window" in base or "scatter" in base:
        # Max-pool is a reduce-window; its gradient becomes a variadic (value, index) reduce-window + scatter.
        return "XLA max-pool fwd/bwd (reduce-window, scatter)"
    if "fusion" in base:
        return "XLA fused elementwise/reductions (BN, ReLU, adds, upsampling, loss)"
    return f"XLA other ({base})"


def _op_events(xspace_path: str):
    """(op name, op type or None for an XLA thunk, seconds) of the outermost TF op / XLA thunk events."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(xspace_path).read_bytes())
    for plane in space.planes:
        metadata = plane.event_metadata
        for line in plane.lines:
            covered_until = -1
            for event in sorted(line.events, key=lambda e: e.offset_ps):
                meta = metadata[event.metadata_id]
                # TF ops are named "scope/name:Type" with the type as display name; profiler bookkeeping
                # events (ExecutorState::Process, ThunkExecutor::Execute, ...) match neither pattern.
                is_tf_op = bool(meta.display_name) and ":" in meta.name and not meta.name.startswith("Iterator::")
                # Thunks run on TF's compute and Eigen threads ("tf_..."); the Python thread carries the
                # tf.function's own event, named like a thunk.
                is_thunk = line.name.startswith("tf_") and bool(_XLA_THUNK.match(meta.name))
                if not is_tf_op and not is_thunk:
                    continue
                if event.offset_ps < covered_until:  # nested inside an event already counted
                    continue
                covered_until = event.offset_ps + event.duration_ps
                yield meta.name, (meta.display_name if is_tf_op else None), event.duration_ps * 1e-12


def profile_steps_of(net, trainer, iterator, steps: int) -> dict:
    layers_by_name = {layer.name: layer for layer in net.layers}
    with tempfile.TemporaryDirectory() as log_dir:
        tf.profiler.experimental.start(log_dir)
        start = time.perf_counter()
        for _ in range(steps):
            run_step(trainer, iterator)
        wall = time.perf_counter() - start
        tf.profiler.experimental.stop()
        paths = glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True)
        if not paths:
            return {}
        by_kind = collections.Counter()
        conv_by_resolution = collections.Counter()
        op_count = 0
        for name, op_type, seconds in _op_events(paths[0]):
            op_count += 1
            if op_type is None:
                by_kind[_xla_kind(name)] += seconds
                continue
            layer = _layer_of(name, layers_by_name)
            by_kind[_kind(name, op_type, layer)] += seconds
            if isinstance(layer, layers.Conv2D):
                conv_by_resolution[int(layer.output.shape[1])] += seconds
    return dict(wall=wall, steps=steps, by_kind=by_kind, conv_by_resolution=conv_by_resolution,
                ops_per_step=op_count / steps)


def conv_flops_by_resolution(net) -> collections.Counter:
    """Forward conv FLOPs per image grouped by output feature-map size (2 per multiply-add, as flops.py)."""
    by_resolution = collections.Counter()
    for layer in net.layers:
        if isinstance(layer, layers.Conv2D):
            out_positions = math.prod(layer.output.shape[1:-1])
            by_resolution[int(layer.output.shape[1])] += 2 * out_positions * math.prod(layer.kernel.shape)
    return by_resolution


# --- report ------------------------------------------------------------------------------------------

def print_profile(mode: str, profile: dict, flops_by_resolution, batch_size: int) -> None:
    total = sum(profile["by_kind"].values())
    per_step_wall = profile["wall"] / profile["steps"]
    print(f"\nOp time by kind, XLA {mode} ({profile['steps']} profiled steps, {profile['ops_per_step']:.0f} op "
          f"or XLA-thunk executions per step; their summed time is {total / profile['wall']:.2f}x wall time: "
          "independent ops run concurrently, and time outside ops is not counted; shares are of summed op time):")
    print("| kind | ms/step | share |")
    print("| --- | ---: | ---: |")
    for kind, seconds in profile["by_kind"].most_common():
        print(f"| {kind} | {1e3 * seconds / profile['steps']:.0f} | {100 * seconds / total:.1f} % |")
    print(f"(wall time per profiled step {1e3 * per_step_wall:.0f} ms)")
    conv_time = profile["conv_by_resolution"]
    if not conv_time:
        return
    conv_total_time = sum(conv_time.values())
    flops_total = sum(flops_by_resolution.values())
    print(f"\nConvolutions (forward + both gradients) by output feature-map size, XLA {mode}. GFLOP/s uses summed "
          "op time, so it understates the rate of ops that shared the cores with a concurrent op:")
    print("| feature map | share of conv FLOPs | share of conv time | GFLOP/s |")
    print("| --- | ---: | ---: | ---: |")
    for size in sorted(flops_by_resolution, reverse=True):
        seconds = conv_time.get(size, 0.0) / profile["steps"]
        flops = TRAIN_TO_FORWARD_FLOPS * flops_by_resolution[size] * batch_size
        rate = f"{flops / seconds / 1e9:.0f}" if seconds else "n/a"
        print(f"| {size}x{size} | {100 * flops_by_resolution[size] / flops_total:.1f} % | "
              f"{100 * conv_time.get(size, 0.0) / conv_total_time:.1f} % | {rate} |")


def _positive_ints(values, flag: str) -> list[int]:
    try:
        parsed = [int(v) for v in values]
    except ValueError:
        raise app.UsageError(f"--{flag} must be a comma list of integers, got {','.join(values)!r}") from None
    if not parsed or min(parsed) <= 0:
        raise app.UsageError(f"--{flag} must be positive integers, got {','.join(values)!r}")
    return parsed


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    if config is None:
        raise app.UsageError("--config is required (e.g. --config configs/hg2_256.py)")
    for name in ("batch_size", "steps", "warmup", "matmul_repeats"):
        if getattr(FLAGS, name) <= 0:
            raise app.UsageError(f"--{name} must be positive, got {getattr(FLAGS, name)}")
    if FLAGS.profile_steps < 0:
        raise app.UsageError(f"--profile_steps must be >= 0, got {FLAGS.profile_steps}")
    modes = [m.strip().lower() for m in FLAGS.modes]
    if not modes or any(m not in ("off", "on") for m in modes) or len(set(modes)) != len(modes):
        raise app.UsageError(f"--modes must be distinct values of off,on; got {','.join(FLAGS.modes)!r}")
    matmul_sizes = _positive_ints(FLAGS.matmul_sizes, "matmul_sizes")

    try:
        subset = JointSubset.parse(config.joints)
        probe_net = build_net(config, subset)
    except (ValueError, KeyError) as e:
        raise SystemExit(f"bench/train_step.py: config {config.get('name', '?')!r} does not build: {e}") from None
    forward_flops = flops_per_image(probe_net)
    elementwise_flops = flops_per_image(probe_net, include_elementwise=True) - forward_flops
    params = int(sum(math.prod(v.shape) for v in probe_net.trainable_variables))
    flops_by_resolution = conv_flops_by_resolution(probe_net)
    if sum(flops_by_resolution.values()) != forward_flops:
        raise SystemExit("bench/train_step.py: per-resolution conv FLOPs disagree with flops_per_image "
                         "(the network has non-Conv2D FLOP layers this breakdown does not know)")
    input_size = int(config.model.input_size)
    del probe_net
    keras.backend.clear_session()
    batch = synthetic_batch(FLAGS.batch_size, input_size, len(subset), FLAGS.seed)
    train_flops_per_image = TRAIN_TO_FORWARD_FLOPS * forward_flops

    timers = {n: make_matmul_timer(n) for n in matmul_sizes}
    largest = max(matmul_sizes)
    load_before = os.getloadavg()
    per_size_before = matmul_peak(timers, FLAGS.matmul_repeats)
    results, round_seconds = time_modes(config, modes, batch, FLAGS.batch_size, FLAGS.warmup, FLAGS.steps,
                                        FLAGS.profile_steps, FLAGS.seed, timers[largest])
    per_size_after = matmul_peak(timers, FLAGS.matmul_repeats)
    load_after = os.getloadavg()
    round_gflops = [matmul_gflops(largest, t) for t in round_seconds]
    peak = max(*per_size_before.values(), *per_size_after.values(), *round_gflops)

    print(f"\nMachine: {cpu_model()} ({cpu_vector_isa()}), {os.cpu_count()} logical CPUs "
          f"({len(os.sched_getaffinity(0))} usable); TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"oneDNN opts {os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default (on)')}; Python {platform.python_version()}")
    print(f"Load average (1 min) {load_before[0]:.2f} at start, {load_after[0]:.2f} at end "
          f"(> {os.cpu_count()} means other processes shared the cores)")
    print("fp32 matmul peak: " + ", ".join(
        f"n={n}: {per_size_before[n]:.0f} / {per_size_after[n]:.0f}" for n in matmul_sizes)
        + f" GFLOP/s (before / after the training runs, best of {FLAGS.matmul_repeats}); n={largest} once per "
        f"training round: median {statistics.median(round_gflops):.0f}, best {max(round_gflops):.0f}; "
        f"peak = best of all = {peak:.0f} GFLOP/s")
    print(f"Config {config.name}: {params / 1e6:.2f} M parameters, forward {forward_flops / 1e9:.2f} GFLOPs/image "
          f"(convolutions, 2 FLOPs per multiply-add; BN and adds would add {elementwise_flops / 1e9:.2f}); "
          f"training counted as {TRAIN_TO_FORWARD_FLOPS} x forward = {train_flops_per_image / 1e9:.2f} GFLOPs/image "
          "(forward + input gradient + weight gradient)")
    print(f"Batch {FLAGS.batch_size}, {FLAGS.steps} timed steps per mode after {FLAGS.warmup} warm-up steps, modes "
          "interleaved step by step; PoseTrainer + RMSprop through Keras' train function, one in-memory batch "
          "repeated. images/s and GFLOP/s are over all timed steps; 'best step' is the fastest single step")

    baseline_mode = "off" if "off" in results else modes[0]
    baseline = results[baseline_mode]["images_per_second"]
    print(f"\n| config | XLA | step ms (median) | images/s | achieved GFLOP/s | % of matmul peak | "
          f"ratio to XLA {baseline_mode} | best step images/s | 1st step s (trace+compile) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode in modes:
        r = results[mode]
        achieved = r["images_per_second"] * train_flops_per_image / 1e9
        print(f"| {config.name} | {mode} | {1e3 * statistics.median(r['step_seconds']):.0f} | "
              f"{r['images_per_second']:.2f} | {achieved:.1f} | {100 * achieved / peak:.1f} % | "
              f"{r['images_per_second'] / baseline:.2f} | {r['best_images_per_second']:.2f} | "
              f"{r['first_step']:.1f} |")
    print("(XLA on: PoseTrainer jit-compiles the forward and backward pass; the optimizer update stays a TF graph."
          " Keras' own jit_compile: " + ", ".join(f"{m}={results[m]['outer_jit']}" for m in modes) + ")")
    for mode in modes:
        if results[mode].get("profile"):
            print_profile(mode, results[mode]["profile"], flops_by_resolution, FLAGS.batch_size)


if __name__ == "__main__":
    app.run(main)

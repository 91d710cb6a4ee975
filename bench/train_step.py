r"""Training-step throughput of a config with XLA off and on (and mixed precision on and off), against the fp32
matmul peak, and the share of the step spent waiting for the input pipeline.

One run measures, on this machine:

* the fp32 matmul peak: square `tf.matmul` of each --matmul_sizes inside a `tf.function`, 2 n^3 FLOPs each,
  best of --matmul_repeats before and after the training runs plus one of the largest size per training
  round; the best of all is the peak (other processes sharing the cores show up as spread between them);
* per XLA mode, the project's real training step: `PoseTrainer(net, codec, xla=...)` compiled with
  `make_optimizer(config, ...)` (RMSprop for hg2_256) exactly as `kpt_tf.training.loop.train` does, its
  Keras train function fed from one in-memory batch (`Dataset.from_tensors(batch).repeat()`);
  --warmup untimed steps (tracing, XLA compilation), then --steps steps timed one by one, the modes
  interleaved step by step so that load from other processes hits every mode alike;
* per --precisions entry the same runs again under that dtype policy (`mixed`: Keras' mixed_float16, what
  `train.mixed_precision=True` trains with; the loss scaling is Keras' own);
* the input: the same step fed by the training pipeline (`kpt_tf.training.loop.training_dataset`: records,
  decoding, augmentation, prefetch, as `fit` is fed) instead of the in-memory batch, for the first run; the
  waiting share is 1 - (in-memory step / pipeline-fed step), beside the pipeline's own rate without a model.
  The records are --data_dir, or --input_people generated people (`data_prep.embedded`) in a temporary
  directory; --input_people=0 skips it;
* optionally (--profile_steps) a tf.profiler trace of a few more steps, summarised as op time by kind and
  convolution efficiency by feature-map resolution.

Achieved FLOP/s = images/s x 3 x forward FLOPs per image (`kpt_tf.models.flops.flops_per_image`: convolutions
and dense layers, 2 FLOPs per multiply-add); forward + backward is taken as 3x the forward (the backward pass
computes a gradient for the input and one for the weights, each about as costly as the forward).

    .venv/bin/python bench/train_step.py                   # CPU: hg2_256, batch 8, fp32, XLA off and on
    .venv/bin/python bench/train_step.py --modes off --steps 5 --profile_steps 0
    .venv/bin/python bench/train_step.py --device gpu      # GPU: hg8_256, batch 32, fp32 and mixed, XLA off and on
    .venv/bin/python bench/train_step.py --device gpu --data_dir data/mpii_records --batch_size 64

--device gpu refuses when TensorFlow sees no GPU; --device cpu hides any GPU. Its defaults (config, batch size,
precisions) are the GPU run to make when one is at hand (BUILD_NOTES.md); every flag given explicitly wins.
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

import kpt_tf  # noqa: F401  (first: it sets TF's start-up environment before TF loads: kpt_tf/__init__.py)

# isort: split
import keras
import tensorflow as tf
from absl import app, flags
from keras import layers
from ml_collections import config_flags

from bench.machine import cpu_model
from bench.synthetic import synthetic_batch
from kpt_tf.data.records import shard_files
from kpt_tf.joints import JointSubset
from kpt_tf.models import build_net, codec_from_config
from kpt_tf.models.flops import flops_per_image
from kpt_tf.training.loop import make_optimizer, training_dataset
from kpt_tf.training.settings import run_settings
from kpt_tf.training.trainer import PoseTrainer

REPO = Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file("config", str(REPO / "configs" / "hg2_256.py"),
                                          "Training config file (configs/*.py).")
flags.DEFINE_enum("device", "cpu", ["cpu", "gpu"], "Where the steps run; gpu changes the defaults of --config "
                  "(hg8_256), --batch_size (32) and --precisions (fp32,mixed).")
flags.DEFINE_integer("batch_size", 8, "Batch size of the timed training steps (default 32 with --device gpu).")
flags.DEFINE_list("precisions", ["fp32"], "Dtype policies to run: fp32, mixed (mixed_float16); default fp32,mixed "
                  "with --device gpu.")
flags.DEFINE_string("data_dir", "", "Records for the input-wait measurement (default: generated people).")
flags.DEFINE_integer("input_people", 256, "Generated people for the input-wait measurement when --data_dir is not "
                     "given; 0 skips the measurement.")
flags.DEFINE_integer("steps", 10, "Timed training steps per mode.")
flags.DEFINE_integer("warmup", 3, "Untimed steps per mode first (tracing, XLA compilation); at least 1.")
flags.DEFINE_list("modes", ["off", "on"], "XLA modes to run, in order: off (TF graph + oneDNN), on (XLA).")
flags.DEFINE_list("matmul_sizes", ["2048", "4096"], "Square fp32 matmul sizes for the peak.")
flags.DEFINE_integer("matmul_repeats", 5, "Timed repeats per matmul size (the best one counts).")
flags.DEFINE_integer("profile_steps", 2, "Steps per mode traced with tf.profiler for the op breakdown; 0 = none.")
flags.DEFINE_integer("seed", 0, "Seed of the weights and of the synthetic batch (same for every mode).")

# What --device gpu runs unless a flag says otherwise: the GPU readiness figure (Newell's hg8 x 256 at a
# GPU batch, both precisions).
GPU_DEFAULTS = dict(config="hg8_256", batch_size=32, precisions=["fp32", "mixed"])
PRECISIONS = ("fp32", "mixed")

# Forward + backward FLOPs as a multiple of the forward FLOPs (input gradient + weight gradient).
TRAIN_TO_FORWARD_FLOPS = 3


# --- machine and peak --------------------------------------------------------------------------------

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

def build_trainer(config, xla: bool, steps_per_epoch: int, seed: int, precision: str = "fp32"):
    """Net, trainer and optimizer as `kpt_tf.training.loop.train` builds them (single device), under the dtype
    policy of `precision` (the layers keep it after the block)."""
    with run_settings(seed, mixed_precision=precision == "mixed"):
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


def run_label(xla: str, precision: str) -> str:
    return f"XLA {xla}, {precision}"


def time_modes(config, runs_wanted, batch, batch_size: int, warmup: int, steps: int, profile_steps: int, seed: int,
               matmul_timer, input_dataset=None) -> tuple[dict, list]:
    """Step times of every (XLA mode, precision) run, the runs' timed steps interleaved (a, b, a, b, ...).

    Interleaving makes other processes on the shared cores slow every run alike; one matmul of the
    largest peak size is timed in every round too, so the peak sees the same conditions. With
    `input_dataset`, the first run also takes `steps` steps fed by it (`input` in its result). Returns the
    per-run results and the per-round matmul seconds.
    """
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    runs = {}
    for xla, precision in runs_wanted:
        label = run_label(xla, precision)
        net, trainer = build_trainer(config, xla == "on", warmup + 2 * steps + profile_steps, seed, precision)
        iterator = iter(dataset)
        start = time.perf_counter()
        run_step(trainer, iterator)
        first_step = time.perf_counter() - start
        for _ in range(warmup - 1):
            run_step(trainer, iterator)
        runs[label] = dict(net=net, trainer=trainer, iterator=iterator, first_step=first_step, step_seconds=[],
                           xla=xla, precision=precision)
    matmul_seconds = []
    for _ in range(steps):
        for run in runs.values():
            start = time.perf_counter()
            run_step(run["trainer"], run["iterator"])
            run["step_seconds"].append(time.perf_counter() - start)
        matmul_seconds.append(matmul_timer())
    results = {}
    for index, label in enumerate(list(runs)):
        run = runs.pop(label)
        seconds = run["step_seconds"]
        results[label] = dict(xla=run["xla"], precision=run["precision"], first_step=run["first_step"],
                              step_seconds=seconds, images_per_second=batch_size * steps / sum(seconds),
                              best_images_per_second=batch_size / min(seconds),
                              outer_jit=bool(run["trainer"].jit_compile))
        if index == 0 and input_dataset is not None:
            results[label]["input"] = time_input(run["trainer"], input_dataset, steps, batch_size)
        if profile_steps:
            results[label]["profile"] = profile_steps_of(run["net"], run["trainer"], run["iterator"],
                                                         profile_steps)
        del run
        keras.backend.clear_session()
        gc.collect()
    return results, matmul_seconds


def time_input(trainer, dataset, steps: int, batch_size: int) -> dict:
    """Steps fed by the training pipeline, and the pipeline alone: how much of a step waits for input."""
    iterator = iter(dataset)
    run_step(trainer, iterator)            # fills the prefetch buffer and the shuffle buffer
    fed = []
    for _ in range(steps):
        start = time.perf_counter()
        run_step(trainer, iterator)
        fed.append(time.perf_counter() - start)
    alone = iter(dataset)
    next(alone)
    start = time.perf_counter()
    for _ in range(steps):
        next(alone)
    return dict(fed_step_seconds=fed, pipeline_images_per_second=batch_size * steps / (time.perf_counter() - start))


def input_records(config, log=print):
    """(records directory, temporary directory to remove or None) for the input-wait measurement."""
    if FLAGS.data_dir:
        try:
            shard_files(FLAGS.data_dir, config.data.train_split)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"bench/train_step.py: --data_dir {FLAGS.data_dir}: {e}") from None
        return FLAGS.data_dir, None
    from data_prep.embedded import ensure_embedded_dataset

    tmp = tempfile.TemporaryDirectory(prefix="train_step_records_")
    log(f"generating {FLAGS.input_people} people at {config.model.input_size} px for the input-wait measurement")
    records = ensure_embedded_dataset(tmp.name, num_train=FLAGS.input_people, num_val=8, seed=FLAGS.seed,
                                      input_size=int(config.model.input_size), progress=False)
    return str(records), tmp


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
        if "MatMul" in op_type:   # blocks.PointwiseConv2D: a 1x1 conv as a matmul; its gradients are matmuls too
            return ("1x1 conv gradients (as matmuls)" if "gradient_tape" in op_name
                    else "1x1 conv forward (as matmul, + bias)")
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

def print_profile(label: str, profile: dict, flops_by_resolution, batch_size: int) -> None:
    total = sum(profile["by_kind"].values())
    per_step_wall = profile["wall"] / profile["steps"]
    print(f"\nOp time by kind, {label} ({profile['steps']} profiled steps, {profile['ops_per_step']:.0f} op "
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
    print(f"\nConvolutions (forward + both gradients) by output feature-map size, {label}. GFLOP/s uses summed "
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


def select_device(device: str) -> None:
    """--device gpu: refuse without a GPU; --device cpu: hide any GPU so the run is a CPU run."""
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise SystemExit("bench/train_step.py: --device gpu, but TensorFlow sees no GPU "
                         "(tf.config.list_physical_devices('GPU') is empty: no GPU, or a CPU-only TensorFlow)")
    if device == "cpu" and gpus:
        tf.config.set_visible_devices([], "GPU")


def resolve_defaults(device: str):
    """(config, batch size, precisions): the flags, with --device gpu's defaults for the ones not given."""
    config = _CONFIG.value
    batch_size, precisions = FLAGS.batch_size, [p.strip().lower() for p in FLAGS.precisions]
    if device == "gpu":
        if not FLAGS["config"].present:
            import importlib

            config = importlib.import_module(f"configs.{GPU_DEFAULTS['config']}").get_config()
        if not FLAGS["batch_size"].present:
            batch_size = GPU_DEFAULTS["batch_size"]
        if not FLAGS["precisions"].present:
            precisions = list(GPU_DEFAULTS["precisions"])
    if not precisions or any(p not in PRECISIONS for p in precisions) or len(set(precisions)) != len(precisions):
        raise app.UsageError(f"--precisions must be distinct values of {','.join(PRECISIONS)}; got "
                             f"{','.join(FLAGS.precisions)!r}")
    return config, batch_size, precisions


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    select_device(FLAGS.device)
    config, batch_size, precisions = resolve_defaults(FLAGS.device)
    if config is None:
        raise app.UsageError("--config is required (e.g. --config configs/hg2_256.py)")
    for name, value in (("batch_size", batch_size), ("steps", FLAGS.steps), ("warmup", FLAGS.warmup),
                        ("matmul_repeats", FLAGS.matmul_repeats)):
        if value <= 0:
            raise app.UsageError(f"--{name} must be positive, got {value}")
    if FLAGS.profile_steps < 0 or FLAGS.input_people < 0:
        raise app.UsageError("--profile_steps and --input_people must be >= 0")
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
    batch = synthetic_batch(batch_size, input_size, len(subset), FLAGS.seed)
    train_flops_per_image = TRAIN_TO_FORWARD_FLOPS * forward_flops

    records_tmp, input_dataset = None, None
    if FLAGS.data_dir or FLAGS.input_people:
        records, records_tmp = input_records(config)
        input_config = config.copy_and_resolve_references()
        with input_config.unlocked():
            input_config.data.dir = records
            input_config.train.batch_size = batch_size
        input_dataset = training_dataset(input_config, subset)

    timers = {n: make_matmul_timer(n) for n in matmul_sizes}
    largest = max(matmul_sizes)
    load_before = os.getloadavg()
    per_size_before = matmul_peak(timers, FLAGS.matmul_repeats)
    runs_wanted = [(mode, precision) for precision in precisions for mode in modes]
    results, round_seconds = time_modes(config, runs_wanted, batch, batch_size, FLAGS.warmup, FLAGS.steps,
                                        FLAGS.profile_steps, FLAGS.seed, timers[largest], input_dataset)
    per_size_after = matmul_peak(timers, FLAGS.matmul_repeats)
    load_after = os.getloadavg()
    if records_tmp is not None:
        records_tmp.cleanup()
    round_gflops = [matmul_gflops(largest, t) for t in round_seconds]
    peak = max(*per_size_before.values(), *per_size_after.values(), *round_gflops)

    gpus = tf.config.get_visible_devices("GPU")
    device = (f"GPU: {', '.join(tf.config.experimental.get_device_details(g).get('device_name', g.name) for g in gpus)}"
              if gpus else "CPU")
    print(f"\nMachine: {cpu_model()} ({cpu_vector_isa()}), {os.cpu_count()} logical CPUs "
          f"({len(os.sched_getaffinity(0))} usable); runs on {device}; TensorFlow {tf.__version__}, Keras "
          f"{keras.__version__}, oneDNN opts {os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default (on)')}; Python "
          f"{platform.python_version()}")
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
    print(f"Batch {batch_size}, {FLAGS.steps} timed steps per run after {FLAGS.warmup} warm-up steps, runs "
          "interleaved step by step; PoseTrainer + the config's optimizer through Keras' train function, one "
          "in-memory batch repeated. images/s and GFLOP/s are over all timed steps; 'best step' is the fastest "
          "single step")

    baseline_label = next(iter(results))
    baseline = results[baseline_label]["images_per_second"]
    print(f"\n| config | XLA | precision | step ms (median) | images/s | achieved GFLOP/s | % of fp32 matmul peak | "
          f"ratio to {baseline_label} | best step images/s | 1st step s (trace+compile) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results.values():
        achieved = r["images_per_second"] * train_flops_per_image / 1e9
        print(f"| {config.name} | {r['xla']} | {r['precision']} | {1e3 * statistics.median(r['step_seconds']):.0f} | "
              f"{r['images_per_second']:.2f} | {achieved:.1f} | {100 * achieved / peak:.1f} % | "
              f"{r['images_per_second'] / baseline:.2f} | {r['best_images_per_second']:.2f} | "
              f"{r['first_step']:.1f} |")
    print("(XLA on: PoseTrainer jit-compiles the forward and backward pass; the optimizer update stays a TF graph."
          " Keras' own jit_compile: " + ", ".join(f"{k}={r['outer_jit']}" for k, r in results.items()) + ")")
    fed = results[baseline_label].get("input")
    if fed:
        memory_step = statistics.median(results[baseline_label]["step_seconds"])
        fed_step = statistics.median(fed["fed_step_seconds"])
        waiting = max(0.0, 1.0 - memory_step / fed_step)
        source = FLAGS.data_dir or f"{FLAGS.input_people} generated people"
        print(f"\nInput ({baseline_label}; records: {source}): step fed by the training pipeline "
              f"{1e3 * fed_step:.0f} ms (median) against {1e3 * memory_step:.0f} ms on the in-memory batch: "
              f"{100 * waiting:.0f} % of the step waits for input. The pipeline alone delivers "
              f"{fed['pipeline_images_per_second']:.1f} images/s; the step consumes "
              f"{batch_size / memory_step:.1f}.")
    for label, r in results.items():
        if r.get("profile"):
            print_profile(label, r["profile"], flops_by_resolution, batch_size)


if __name__ == "__main__":
    from kpt_tf import cli

    cli.run(main, "bench.train_step")

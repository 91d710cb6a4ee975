"""Device set-up and the tf.distribute strategy: all local GPUs, N logical CPUs for tests, or several workers.

`train.strategy`:
    auto          MirroredStrategy over every local GPU (or `train.num_cpu_replicas` logical CPUs); the default
                  strategy on a single CPU
    multi_worker  MultiWorkerMirroredStrategy over the cluster in `TF_CONFIG` (each worker's local GPUs, or its
                  CPU); `python -m kpt_tf.launch` starts N such workers on one machine

Under several workers the chief (task `chief`, or `worker` 0 when the cluster has no chief) alone writes the
workdir; every other worker writes the same files into a temporary directory that is removed at the end
(TF's documented pattern for `fit` under MultiWorkerMirroredStrategy). All workers read the resume state from
the chief's workdir (`resume.RunCheckpoints`' backup), which must therefore be on a file system every worker
sees.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

STRATEGIES = ("auto", "multi_worker")


def configure_cpu_replicas(num_cpu_replicas: int) -> None:
    """Split the host CPU into N logical devices. Must run before TF initialises its devices."""
    if num_cpu_replicas <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_cpu_replicas)])
    except RuntimeError as e:  # devices already initialised in this process
        have = len(tf.config.list_logical_devices("CPU"))
        if have < num_cpu_replicas:
            raise RuntimeError(
                f"cannot create {num_cpu_replicas} logical CPUs: TF devices were initialised first "
                f"({have} CPU devices); configure replicas before any TF op runs") from e


def make_strategy(num_cpu_replicas: int = 0, kind: str = "auto") -> tf.distribute.Strategy:
    """`kind` auto: MirroredStrategy over every local GPU; over N logical CPUs when asked; default strategy
    otherwise. One GPU still gets a MirroredStrategy so the code path (synchronized BN, loss scaling, sharded
    input) is the one multi-GPU users run. `kind` multi_worker: see `multi_worker_strategy`.
    """
    kind = str(kind).lower()
    if kind == "multi_worker":
        return multi_worker_strategy()
    if kind != "auto":
        raise ValueError(f"config train.strategy must be one of {', '.join(STRATEGIES)}, not {kind!r}")
    # Physical, not logical, devices first: listing logical devices initialises TF's context, after which the
    # CPU can no longer be split into replicas.
    if tf.config.list_physical_devices("GPU"):
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("GPU")])
    if num_cpu_replicas > 1:
        configure_cpu_replicas(num_cpu_replicas)
        cpus = tf.config.list_logical_devices("CPU")[:num_cpu_replicas]
        # The default NCCL all-reduce is GPU-only; CPUs reduce through the host.
        return tf.distribute.MirroredStrategy(
            [d.name for d in cpus], cross_device_ops=tf.distribute.ReductionToOneDevice())
    return tf.distribute.get_strategy()


def cluster_from_environment() -> dict:
    """The parsed `TF_CONFIG` ({} when unset), refused with the reason when it cannot describe a cluster."""
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return {}
    try:
        spec = json.loads(text)
        cluster, task = spec["cluster"], spec["task"]
        members = cluster[task["type"]]
        index = int(task["index"])
        if not 0 <= index < len(members):
            raise ValueError(f"task index {index} outside its {len(members)} {task['type']} addresses")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"TF_CONFIG does not describe this worker's cluster ({type(e).__name__}: {e}); "
                         'expected {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
                         '"index": i}}') from None
    return spec


def multi_worker_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy over the `TF_CONFIG` cluster (NCCL between GPUs, ring on CPUs, TF's AUTO
    choice). Must be created before any other TF op of the process (TF configures collectives at start-up);
    without `TF_CONFIG` it is a one-worker strategy over the local devices."""
    cluster_from_environment()
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as e:
        raise RuntimeError(f"MultiWorkerMirroredStrategy could not start ({e}): it must be created before any "
                           "other TensorFlow op of the process") from e


def is_multi_worker(strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def task_name(strategy) -> str:
    """`worker 1`, `chief 0`, ... for a cluster member; `local` otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not is_multi_worker(strategy) or resolver is None or resolver.task_type is None:
        return "local"
    return f"{resolver.task_type} {int(resolver.task_id or 0)}"


def worker_count(strategy) -> int:
    """Processes taking part in training (1 unless the strategy spans a cluster)."""
    if not is_multi_worker(strategy):
        return 1
    spec = strategy.cluster_resolver.cluster_spec().as_dict() or {}
    return max(1, sum(len(spec.get(kind, [])) for kind in ("chief", "worker")))


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files (always, except on the non-chief workers of a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not is_multi_worker(strategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return task_type == "worker" and int(task_id or 0) == 0 and not has_chief


def workers_agree(strategy, digest: str) -> bool:
    """Whether every worker's weights digest (`models.weights.weights_digest`) equals this one's: an all-gather
    over the cluster, so also a barrier (no worker exits while another still needs the chief's coordination
    service). True off a cluster."""
    if not is_multi_worker(strategy):
        return True
    local = tf.constant([int(digest[:15], 16)], tf.int64)

    @tf.function
    def gather():
        return strategy.gather(strategy.run(lambda: tf.identity(local)), axis=0)

    return len(set(gather().numpy().tolist())) == 1


@contextlib.contextmanager
def output_directory(workdir, strategy):
    """Where this process writes: `workdir` on the chief, a temporary directory (removed on exit) elsewhere."""
    if is_chief(strategy):
        yield Path(workdir)
        return
    resolver = strategy.cluster_resolver
    scratch = Path(tempfile.mkdtemp(prefix=f"kpt_tf_{resolver.task_type}{resolver.task_id}_"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def resolve_xla(setting: str) -> bool:
    """`auto` = on when a GPU is present (XLA fuses the hourglass' BN/ReLU/add chains), off on CPU,
    where it measured 0.91x the speed of the default oneDNN kernels (bench/train_step.py, BUILD_NOTES.md)."""
    setting = str(setting).lower()
    if setting in ("on", "true", "1"):
        return True
    if setting in ("off", "false", "0"):
        return False
    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    raise ValueError(f"config train.xla must be auto, on or off, not {setting!r}")

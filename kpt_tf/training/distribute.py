"""Device set-up and the tf.distribute strategy: all local GPUs, or N logical CPUs for tests."""

from __future__ import annotations

import tensorflow as tf


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


def make_strategy(num_cpu_replicas: int = 0) -> tf.distribute.Strategy:
    """MirroredStrategy over every local GPU; over N logical CPUs when asked; default strategy otherwise.

    One GPU still gets a MirroredStrategy so the code path (synchronized BN, loss scaling, sharded
    input) is the one multi-GPU users run.
    """
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy([d.name for d in gpus])
    if num_cpu_replicas > 1:
        configure_cpu_replicas(num_cpu_replicas)
        cpus = tf.config.list_logical_devices("CPU")[:num_cpu_replicas]
        # The default NCCL all-reduce is GPU-only; CPUs reduce through the host.
        return tf.distribute.MirroredStrategy(
            [d.name for d in cpus], cross_device_ops=tf.distribute.ReductionToOneDevice())
    return tf.distribute.get_strategy()


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

"""Shared fixtures: paths, the ../shared/mpii skip, small embedded data sets and tiny configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_MPII = REPO.parent / "shared" / "mpii"


def require_shared_mpii() -> Path:
    """The real MPII reference files, or a skip that says why."""
    if not SHARED_MPII.is_dir():
        pytest.skip(f"../shared/mpii not present beside the repo ({SHARED_MPII}): real-MPII checks skipped")
    return SHARED_MPII


def tiny_train_config(data_dir, joints: str = "all", epochs: int = 2, steps: int = 10, channels: int = 16,
                      stacks: int = 2, depth: int = 2):
    """A seconds-scale training config on 64-pixel crops (depth-2 hourglasses unless `depth` says otherwise)."""
    from configs.base import base_config

    c = base_config()
    c.name = "tiny"
    c.joints = joints
    c.model.num_stacks, c.model.channels, c.model.depth, c.model.input_size = stacks, channels, depth, 64
    c.data.dir = str(data_dir)
    c.data.shuffle_buffer = 64
    c.train.batch_size = 8
    c.train.epochs = epochs
    c.train.steps_per_epoch = steps
    c.train.learning_rate = 1e-3
    c.train.lr_drop_epochs = ()
    c.train.skeleton_images = 2
    c.train.seed = 0
    return c


@pytest.fixture(scope="session")
def embedded_records(tmp_path_factory) -> Path:
    """A small generated data set converted for 64-pixel inputs (shared by the training tests)."""
    from data_prep.embedded import ensure_embedded_dataset

    return ensure_embedded_dataset(tmp_path_factory.mktemp("embedded"), num_train=160, num_val=32, seed=0,
                                   input_size=64, num_workers=2, progress=False)


@pytest.fixture(scope="session")
def trained_workdir(embedded_records, tmp_path_factory) -> Path:
    """A tiny network trained for a few steps on all 16 joints (export, evaluation and serving tests)."""
    from kpt_tf.training import loop

    workdir = tmp_path_factory.mktemp("trained")
    loop.train(tiny_train_config(embedded_records, epochs=1, steps=4), workdir, verbose=0)
    return workdir


def file_size_limit(max_bytes: int):
    """A `preexec_fn` that makes the child's writes past `max_bytes` per file fail with EFBIG ("File too large"),
    as a full disk fails them with ENOSPC: the full-disk tests, without root or a small file system."""
    import resource
    import signal

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)    # otherwise the kernel kills the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply

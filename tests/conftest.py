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
                      stacks: int = 2, depth: int = 1):
    """A seconds-scale training config on 64-pixel crops: 2 stacks (intermediate supervision) of depth-1
    hourglasses unless told otherwise. Tracing, saving and the first run of each graph cost about one second per
    ten layers whatever the batch: depth 1 has 157 layers, depth 2 223 (measured: 1-epoch runs 25 % faster)."""
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


def built_once(tmp_path_factory, name: str, build) -> Path:
    """`<session temp>/<name>`, built by `build(path)` once per test session and shared by every xdist worker: the
    first worker to ask builds it under a file lock, the others wait for it and reuse it. Each worker otherwise
    trains (or exports) its own copy: the same seconds paid twice. Users of a shared artifact only read it."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):     # each worker's base temp is <session>/popen-gwN
        root = root.parent
    target, done = root / name, root / f"{name}.built"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # released when the file closes (or the worker dies)
        if not done.exists():
            if target.exists():                   # a worker died while building it
                import shutil

                shutil.rmtree(target)
            build(target)
            done.touch()
    return target


@pytest.fixture(scope="session")
def embedded_records(tmp_path_factory) -> Path:
    """A small generated data set converted for 64-pixel inputs (shared by the training tests)."""
    from data_prep.embedded import ensure_embedded_dataset

    root = built_once(tmp_path_factory, "embedded", lambda out: ensure_embedded_dataset(
        out, num_train=160, num_val=32, seed=0, input_size=64, num_workers=2, progress=False))
    return root / "records"       # where ensure_embedded_dataset writes them


TRAINED_EPOCHS = 2      # of `trained_workdir`


@pytest.fixture(scope="session")
def trained_workdir(embedded_records, tmp_path_factory) -> Path:
    """A tiny network trained for two epochs of a few steps on all 16 joints, for the tests that need *a* trained
    model (export, evaluation, prediction, serving) and the test of a finished workdir's files; read-only."""
    from kpt_tf.training import loop

    return built_once(tmp_path_factory, "trained", lambda out: loop.train(
        tiny_train_config(embedded_records, epochs=TRAINED_EPOCHS, steps=4), out, verbose=0))


@pytest.fixture(scope="session")
def exported_savedmodel(trained_workdir, tmp_path_factory) -> Path:
    """`trained_workdir` exported for serving without flip test (the network alone); read-only."""
    from kpt_tf import workdir as wd
    from kpt_tf.export import export_workdir

    return built_once(tmp_path_factory, "exported_plain", lambda out: export_workdir(
        trained_workdir, out, options=wd.ExportOptions(flip_test=False)))


def file_size_limit(max_bytes: int):
    """A `preexec_fn` that makes the child's writes past `max_bytes` per file fail with EFBIG ("File too large"),
    as a full disk fails them with ENOSPC: the full-disk tests, without root or a small file system."""
    import resource
    import signal

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)    # otherwise the kernel kills the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


# Test files by cost, heaviest first: every file that kept one worker busy >= 20 s on a fresh-clone run (Intel Xeon
# host, 2026-12-07; BUILD_NOTES "Tests"). `make test` hands whole files to its two xdist workers in collection order
# (`--dist loadfile --no-loadscope-reorder`): longest first, the others (each a few seconds) last, so the two
# workers end within seconds of each other. With only the ten heaviest listed, a 106-s file (test_bad_input_cli)
# came last and one worker ran it alone for 77 s.
HEAVIEST_FIRST = (
    "tests/bench/test_bench_scripts.py",
    "tests/kpt_tf/training/test_multi_worker.py",
    "tests/kpt_tf/test_export.py",
    "tests/kpt_tf/training/test_loop.py",
    "tests/kpt_tf/experiments/test_kptransfer.py",
    "tests/kpt_tf/training/test_resume.py",
    "tests/kpt_tf/interop/test_bearpaw.py",
    "tests/test_bad_input_cli.py",
    "tests/configs/test_embedded_bench_learns.py",
    "tests/kpt_tf/experiments/test_pbn.py",
    "tests/kpt_tf/models/test_pbn.py",
    "tests/kpt_tf/experiments/test_fpd.py",
    "tests/kpt_tf/distill/test_distill.py",
    "tests/kpt_tf/test_transfer_branches.py",
    "tests/configs/test_configs.py",
    "tests/kpt_tf/models/test_hourglass.py",
    "tests/kpt_tf/test_transfer.py",
    "tests/tools/test_demo.py",
    "tests/data_prep/test_convert.py",
    "tests/kpt_tf/training/test_trainer.py",
    "tests/kpt_tf/test_ownership.py",
    "tests/kpt_tf/test_tflite.py",
    "tests/kpt_tf/test_predict.py",
    "tests/kpt_tf/test_evaluate_coco.py",
    "tests/kpt_tf/test_evaluate.py",
    "tests/kpt_tf/test_prepared_workdirs.py",
)


def pytest_collection_modifyitems(session, config, items):
    missing = [path for path in HEAVIEST_FIRST if not (REPO / path).is_file()]
    if missing:      # a renamed file would silently drop to the end of the order
        raise pytest.UsageError(f"tests/conftest.py HEAVIEST_FIRST names files that do not exist: {missing}")
    rank = {path: i for i, path in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))    # stable: the rest keep order


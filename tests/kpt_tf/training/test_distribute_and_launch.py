"""The strategy choice, TF_CONFIG checks, chief/scratch rules, the Keras private-API shim and the launcher's
pieces (quick; the multi-worker runs themselves are in test_multi_worker.py)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import types

import keras
import pytest

from kpt_tf import launch
from kpt_tf.training import distribute, keras_compat
from tests.conftest import REPO


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="train.strategy must be one of auto, multi_worker"):
        distribute.make_strategy(0, "parameter_server")


@pytest.mark.parametrize("text, problem", [
    ("{not json", "JSONDecodeError"),
    ('{"cluster": {"worker": ["a:1"]}}', "KeyError"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "outside its 1 worker"),
])
def test_bad_tf_config_is_named(monkeypatch, text, problem):
    monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(ValueError, match="TF_CONFIG does not describe") as e:
        distribute.cluster_from_environment()
    assert problem in str(e.value)


def test_tf_config_round_trip(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", launch.tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1))
    assert distribute.cluster_from_environment()["task"] == {"type": "worker", "index": 1}
    monkeypatch.delenv("TF_CONFIG")
    assert distribute.cluster_from_environment() == {}


class FakeResolver:
    def __init__(self, task_type, task_id, cluster):
        self.task_type, self.task_id, self._cluster = task_type, task_id, cluster

    def cluster_spec(self):
        return types.SimpleNamespace(as_dict=lambda: self._cluster)


def fake_multi_worker(monkeypatch, task_type, task_id, cluster):
    monkeypatch.setattr(distribute, "is_multi_worker", lambda strategy: True)
    return types.SimpleNamespace(cluster_resolver=FakeResolver(task_type, task_id, cluster))


@pytest.mark.parametrize("task_type, task_id, cluster, chief", [
    ("worker", 0, {"worker": ["a", "b"]}, True),
    ("worker", 1, {"worker": ["a", "b"]}, False),
    ("worker", 0, {"chief": ["c"], "worker": ["a", "b"]}, False),
    ("chief", 0, {"chief": ["c"], "worker": ["a"]}, True),
])
def test_chief_rule_and_scratch_directory(monkeypatch, tmp_path, task_type, task_id, cluster, chief):
    strategy = fake_multi_worker(monkeypatch, task_type, task_id, cluster)
    assert distribute.is_chief(strategy) is chief
    assert distribute.worker_count(strategy) == sum(len(v) for v in cluster.values())
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    with distribute.output_directory(tmp_path / "workdir", strategy) as out:
        if chief:
            assert out == tmp_path / "workdir"
        else:
            assert out.parent == tmp_path and out.name.startswith(f"kpt_tf_{task_type}{task_id}_")
            (out / "best.weights.h5").write_bytes(b"x")
    assert list(tmp_path.glob("kpt_tf_*")) == []      # the scratch copy is removed


def test_local_strategy_is_chief_and_one_worker():
    strategy = distribute.make_strategy(0, "auto")
    assert distribute.is_chief(strategy) and distribute.worker_count(strategy) == 1
    assert distribute.task_name(strategy) == "local"
    assert distribute.workers_agree(strategy, "0" * 64)


def test_keras_private_api_used_by_the_shim_is_still_there():
    """Fails loudly when a Keras upgrade moves what keras_compat overrides or imports."""
    assert keras_compat.keras_version_checked(), (
        f"Keras {keras.__version__} is not the checked {keras_compat.CHECKED_KERAS}: re-verify "
        "kpt_tf/training/keras_compat.py (keras#20585) and tests/kpt_tf/training/test_multi_worker.py, then update it")
    from keras.src.backend.tensorflow import trainer as tf_trainer

    method = tf_trainer.TensorFlowTrainer._maybe_symbolic_build
    assert list(inspect.signature(method).parameters) == ["self", "iterator", "data_batch"]
    assert "_maybe_symbolic_build(iterator=epoch_iterator)" in inspect.getsource(tf_trainer.TensorFlowTrainer.fit)
    # the reduction that refuses scalar logs under a multi-worker strategy
    assert 'strategy.reduce("MEAN", v, axis=0)' in inspect.getsource(tf_trainer.reduce_per_replica)
    from kpt_tf.training.trainer import PoseTrainer

    assert PoseTrainer._maybe_symbolic_build is keras_compat.BuiltBeforeFit._maybe_symbolic_build
    # run_functional: Functional.call's own route through the graph
    from keras.src.models.functional import Functional

    assert "self._run_through_graph(" in inspect.getsource(Functional.call)
    assert list(inspect.signature(Functional._run_through_graph).parameters)[:3] == ["self", "inputs", "operation_fn"]


def test_launcher_pieces():
    ports = launch.free_ports(3)
    assert len(set(ports)) == 3
    command = launch.worker_command(["--config", "c.py"])
    assert command[1:4] == ["-m", "kpt_tf.train", "--config"] and command[-1] == "--config.train.strategy=multi_worker"
    kept = launch.worker_command(["--config.train.strategy=auto"])
    assert kept[-1] == "--config.train.strategy=auto"
    spec = json.loads(launch.tf_config(["h:1", "h:2"], 0))
    assert spec == {"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 0}}


def test_launcher_stops_everyone_when_a_worker_fails(tmp_path):
    """A worker that fails at once (no such config) makes the launcher stop the other and exit non-zero."""
    done = subprocess.run([sys.executable, "-m", "kpt_tf.launch", "--workers=2", "--grace_seconds=5", "--",
                           "--config", str(tmp_path / "missing.py"), "--workdir", str(tmp_path / "w")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "[launch] worker" in done.stdout and "exited with" in done.stdout
    assert "missing.py" in done.stdout
    assert not (tmp_path / "w").exists()


def test_launcher_needs_train_arguments():
    done = subprocess.run([sys.executable, "-m", "kpt_tf.launch", "--workers=2"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode != 0 and "give the kpt_tf.train arguments after `--`" in done.stderr

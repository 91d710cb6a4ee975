"""Bad input to evaluation, export and training: a message naming the input and the problem, exit code 2,
no traceback and no help text; `--out_mat` keeps every person; a damaged shard is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from tests.conftest import REPO
from tests.data_prep.test_convert import _convert, make_dataset
from tests.kpt_tf.test_transfer import tiny_config


def run_cli(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=300)


def assert_refused(done, *fragments):
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in last, last
    assert "Traceback" not in done.stderr and "flags:" not in done.stderr and "USAGE" not in done.stderr


@pytest.fixture(scope="module")
def records_and_model(tmp_path_factory):
    """Converted records whose last validation person is skipped, and an (untrained) tiny model workdir."""
    from kpt_tf import workdir as wd
    from kpt_tf.joints import JointSubset
    from kpt_tf.models import build_net

    root = tmp_path_factory.mktemp("bad_input")
    annotations, images, source = make_dataset(root / "data", num_images=6, val_every=3)
    val = [i for i, r in enumerate(source) if r["isValidation"]]
    source[val[-1]]["objpos"] = [-1.0, -1.0]           # the last validation person: skipped by the converter
    annotations.write_text(json.dumps(source))
    manifest = _convert(annotations, images, root / "records")
    assert manifest["splits"]["val"]["skipped"] == 1
    model = root / "model"
    model.mkdir()
    config = tiny_config("all")
    build_net(config, JointSubset.parse("all")).save(model / wd.BEST_MODEL)
    wd.save_config(config, model)
    return root / "records", model, len(val)


def test_out_mat_keeps_trailing_skipped_people_at_zero(records_and_model, tmp_path):
    from kpt_tf.evaluate import evaluate_model

    records, model, val_people = records_and_model
    evaluate_model(model, records, "val", out_mat=tmp_path / "preds.mat")
    preds = np.asarray(scipy.io.loadmat(tmp_path / "preds.mat")["preds"])
    rows = preds.shape[0] if preds.shape[-1] == 2 else preds.shape[-1]
    assert rows == val_people                          # 3 people, not 2: the skipped last one is kept
    last = preds[-1] if preds.shape[-1] == 2 else preds[..., -1].T
    assert np.all(last == last.flat[0])                # one constant: MPII's "no prediction"


def test_damaged_shard_is_named(records_and_model, tmp_path):
    import shutil

    from kpt_tf.evaluate import evaluate_model

    records, model, _ = records_and_model
    copy = tmp_path / "records"
    shutil.copytree(records, copy)
    shard = next(copy.glob("val-*.tfrecord"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF                       # one flipped byte in a record's payload
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"damaged TFRecord shard \({shard}: .*corrupted record.* redoes"):
        evaluate_model(model, copy, "val")


@pytest.mark.slow
def test_evaluate_skips_and_counts_damaged_records_when_asked(records_and_model, tmp_path):
    import shutil

    from kpt_tf.data.damaged import damaged_records
    from kpt_tf.data.splits import count_records

    records, model, val_people = records_and_model
    copy = tmp_path / "records"
    shutil.copytree(records, copy)
    shard = next(copy.glob("val-*.tfrecord"))
    whole = count_records(copy, "val")
    data = bytearray(shard.read_bytes())
    data[len(data) - 20] ^= 0xFF                       # inside the last record: the ones before it still read
    shard.write_bytes(bytes(data))
    [found] = damaged_records(copy, "val")
    assert found["file"] == str(shard) and found["readable"] == whole - 1 and found["lost"] == 1
    assert damaged_records(records, "val") == []     # the intact copy: hashes match, nothing read
    json_path = tmp_path / "eval.json"
    done = run_cli("kpt_tf.evaluate", "--model", str(model), "--data", str(copy), "--skip_damaged_records",
                   "--json", str(json_path), "--out_mat", str(tmp_path / "preds.mat"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"skipping damaged records of 'val': {shard}" in done.stderr and "1 after it are lost" in done.stderr
    assert "damaged shards: 1; 1 records skipped" in done.stdout
    assert json.loads(json_path.read_text())["damaged_records"] == {"shards": 1, "records_lost": 1}
    preds = np.asarray(scipy.io.loadmat(tmp_path / "preds.mat")["preds"])
    assert val_people in preds.shape                   # every person of the split has a row


@pytest.mark.slow
def test_evaluate_refuses_a_truncated_model_and_missing_data(records_and_model, tmp_path):
    import shutil

    records, model, _ = records_and_model
    broken = tmp_path / "model"
    shutil.copytree(model, broken)
    data = (broken / "best.keras").read_bytes()
    (broken / "best.keras").write_bytes(data[: len(data) // 3])
    assert_refused(run_cli("kpt_tf.evaluate", "--model", str(broken), "--data", str(records)),
                   "kpt_tf.evaluate: error: ", "best.keras: not a readable .keras file (truncated")
    assert_refused(run_cli("kpt_tf.evaluate", "--model", str(model), "--data", str(tmp_path / "nothing")),
                   "nothing' does not exist")
    (tmp_path / "empty").mkdir()
    assert_refused(run_cli("kpt_tf.evaluate", "--model", str(model), "--data", str(tmp_path / "empty")),
                   "no TFRecord shards for split 'val'", "splits present: none")


@pytest.mark.slow
def test_export_refusal_is_one_line_without_the_help_text(tmp_path):
    assert_refused(run_cli("kpt_tf.export", "--workdir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")),
                   "kpt_tf.export: error: ", "nowhere: does not exist")
    (tmp_path / "notawork").mkdir()
    assert_refused(run_cli("kpt_tf.export", "--workdir", str(tmp_path / "notawork"), "--out", str(tmp_path / "o")),
                   "no config.json; is", "a kpt_tf training workdir?")


@pytest.mark.parametrize("module, args, fragments", [
    ("kpt_tf.experiments.kptransfer", ("--config", "configs/kptransfer_upper_lower.py",
                                       "--config.data.dir=/nonexistent/records"),
     ("data dir '/nonexistent/records' does not exist",)),
    ("kpt_tf.distill", ("--config", "configs/fpd_demo.py", "--config.data.dir=/nonexistent/records"),
     ("data dir '/nonexistent/records' does not exist",)),
    ("kpt_tf.grouping", ("--data", "/nonexistent/people.json", "--groups", "3"), ("/nonexistent/people.json",)),
])
def test_experiment_distillation_and_grouping_refusals_are_one_line(tmp_path, module, args, fragments):
    assert_refused(run_cli(module, *args, "--workdir" if module != "kpt_tf.grouping" else "--out",
                           str(tmp_path / "run")), f"{module}: error: ", *fragments)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, fragments", [
    ("--config.train.lernrate=1", ("--config.train.lernrate: the config has no key 'lernrate'; override refused",
                                   'Did you mean "learning_rate"')),
    ("--config.joints=left_wirst", ("unknown joint 'left_wirst'",)),
    ("--config.data.dir=/nonexistent/records", ("data dir '/nonexistent/records' does not exist",)),
])
def test_train_refuses_config_typos_unknown_joints_and_missing_data(tmp_path, override, fragments):
    done = run_cli("kpt_tf.train", "--config", "configs/demo.py", override, "--workdir", str(tmp_path / "run"))
    assert_refused(done, "kpt_tf.train: error: ", *fragments)
    assert not (tmp_path / "run").exists()       # nothing written before the refusal


def test_train_refuses_a_typo_inside_a_config_file_naming_its_line(tmp_path):
    # The base config is locked: an assignment to a key it does not have is a typo, not a new setting.
    config = tmp_path / "my_config.py"
    config.write_text("from configs.demo import get_config as demo\n\n\ndef get_config():\n    c = demo()\n"
                      "    c.train.epocs = 3\n    return c\n")
    done = run_cli("kpt_tf.train", "--config", str(config), "--workdir", str(tmp_path / "run"))
    assert_refused(done, "kpt_tf.train: error: ", f"{config}:6: the config has no key 'epocs'",
                   'Did you mean "epochs"')
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_refuses_a_workdir_that_is_not_one(tmp_path):
    # A --workdir pointed at a data or home directory: training would write among the user's files.
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("keep me")
    done = run_cli("kpt_tf.train", "--config", "configs/demo.py", "--workdir", str(home))
    assert_refused(done, "kpt_tf.train: error: ", f"--workdir {home}: not a kpt_tf training workdir",
                   "holds thesis.tex")
    assert sorted(p.name for p in home.iterdir()) == ["thesis.tex"]
    assert (home / "thesis.tex").read_text() == "keep me"
    done = run_cli("kpt_tf.train", "--config", "configs/demo.py", "--workdir", str(home / "thesis.tex"))
    assert_refused(done, "thesis.tex: is a file, not a directory")


def test_training_workdir_check_accepts_what_transfer_and_a_run_leave():
    import tempfile
    from pathlib import Path

    from kpt_tf import workdir as wd

    with tempfile.TemporaryDirectory() as d:
        wd.check_training_workdir(Path(d) / "new")        # missing: fine
        wd.check_training_workdir(d)                       # empty: fine
        for name in (wd.INIT_MODEL, wd.TRANSFER_REPORT_JSON, wd.TRANSFER_REPORT_TEXT):   # kpt_tf.transfer's output
            (Path(d) / name).write_text("x")
        wd.check_training_workdir(d)
        (Path(d) / "savedmodel").mkdir()                   # an export inside a finished run's workdir
        with pytest.raises(ValueError, match="holds savedmodel"):
            wd.check_training_workdir(d)
        (Path(d) / wd.CONFIG).write_text("{}")
        wd.check_training_workdir(d)


@pytest.mark.slow
def test_training_on_a_damaged_shard_stops_naming_it(embedded_records, tmp_path):
    import shutil

    from kpt_tf.data.splits import count_records
    from kpt_tf.training import loop
    from tests.conftest import tiny_train_config

    copy = tmp_path / "records"
    shutil.copytree(embedded_records, copy)
    shard = sorted(copy.glob("train-*.tfrecord"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    config = tiny_train_config(copy, epochs=1, steps=30, stacks=1)   # 30 batches of 8 read every shard
    with pytest.raises(ValueError, match=rf"damaged TFRecord shard \({shard}: "):
        loop.train(config, tmp_path / "run", verbose=0)
    # With the flag the run skips the shard's records from the damaged one on, counts them and finishes.
    config.data.skip_damaged_records = True
    summary = loop.train(config, tmp_path / "run_skipping", verbose=0)
    lost = summary["damaged_records"]["train"]
    assert lost["shards"] == 1 and 0 < lost["records_lost"] < count_records(copy, "train")
    assert summary["damaged_records"]["val"] == {"shards": 0, "records_lost": 0}
    assert len(summary["history"]) == 1

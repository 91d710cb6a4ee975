"""The converter's manifest (kpt_tf.data.manifest): built by the converter, read by the pipeline (record counts, the
records' keypoint layout), no TensorFlow."""

import json
import subprocess
import sys

import pytest

from kpt_tf import layouts
from kpt_tf.data import manifest as mf
from tests.conftest import REPO


def _entries():
    skipped = {"split": "train", "dataset_index": 1, "image": "a.jpg", "person": 0, "reason": "scale <= 0"}
    return {
        "val-00000-of-00001.tfrecord": {"file": "val-00000-of-00001.tfrecord", "split": "val", "records": 2,
                                        "sha256": "c", "read": 2, "people": [0, 2], "skipped": []},
        "train-00001-of-00002.tfrecord": {"file": "train-00001-of-00002.tfrecord", "split": "train", "records": 3,
                                          "sha256": "b", "read": 3, "people": [2, 5], "skipped": []},
        "train-00000-of-00002.tfrecord": {"file": "train-00000-of-00002.tfrecord", "split": "train", "records": 1,
                                          "sha256": "a", "read": 2, "people": [0, 2], "skipped": [skipped]},
    }


def test_build_manifest_totals_order_and_round_trip():
    entries = _entries()
    built = mf.build_manifest(entries, {"train": 2, "val": 1}, {"flag": 1}, {"crop_size": 64}, True, ("train", "val"))
    assert list(built) == ["complete", "splits", "skipped", "shards", "flags", "content"]
    assert built["splits"] == {"train": {"read": 5, "written": 4, "skipped": 1, "num_shards": 2},
                               "val": {"read": 2, "written": 2, "skipped": 0, "num_shards": 1}}
    assert [s["file"] for s in built["shards"]] == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord",
                                                     "val-00000-of-00001.tfrecord"]
    assert all(set(s) == set(mf.SHARD_KEYS) for s in built["shards"])
    assert len(built["skipped"]) == 1
    assert mf.entries_from_manifest(built) == entries


def test_split_record_count_trusts_only_a_matching_shard_list():
    built = mf.build_manifest(_entries(), {"train": 2, "val": 1}, {}, {}, True, ("train", "val"))
    train = ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert mf.split_record_count(built, "train", train) == 4
    assert mf.split_record_count(built, "train", train[:1]) is None            # a shard missing on disk
    assert mf.split_record_count(built, "val", ["val-00000-of-00001.tfrecord"]) == 2
    # Without shard entries: the split totals, only when the manifest is complete.
    totals = {"complete": True, "splits": {"train": {"written": 7}}}
    assert mf.split_record_count(totals, "train", ["x"]) == 7
    assert mf.split_record_count(dict(totals, complete=False), "train", ["x"]) is None
    assert mf.split_record_count({}, "train", ["x"]) is None
    assert mf.MANIFEST_NAME == "manifest.json"


def test_manifest_module_does_not_import_tensorflow():
    code = ("import sys, kpt_tf.data.manifest, kpt_tf.mpii, data_prep.crops, data_prep.workers; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'configs')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_sha256_of_a_remote_path_reads_through_gfile(tmp_path):
    """A shard on gs:// or s3:// is hashed as the pipeline reads it (TF's in-memory ram:// file system here)."""
    import hashlib

    import tensorflow as tf

    from kpt_tf.data.manifest import sha256_of_file

    data = bytes(range(256)) * 5000
    with tf.io.gfile.GFile("ram://kpt_tf_test/shard.tfrecord", "wb") as f:
        f.write(data)
    assert sha256_of_file("ram://kpt_tf_test/shard.tfrecord") == hashlib.sha256(data).hexdigest()
    (tmp_path / "local").write_bytes(data)
    assert sha256_of_file(tmp_path / "local") == hashlib.sha256(data).hexdigest()


def _write_manifest(directory, manifest: dict):
    (directory / mf.MANIFEST_NAME).write_text(json.dumps(manifest))


def test_the_manifest_names_the_records_layout_and_older_ones_are_mpii16(tmp_path):
    entries = _entries()
    coco = mf.build_manifest(entries, {"train": 2, "val": 1}, {}, {}, True, ("train", "val"), layout="coco17")
    assert list(coco)[:2] == ["complete", "layout"] and coco["layout"] == "coco17"
    # MPII's converter names no layout: its manifests keep the keys they had before layouts existed.
    mpii = mf.build_manifest(entries, {"train": 2, "val": 1}, {}, {}, True, ("train", "val"))
    assert "layout" not in mpii and {k: v for k, v in coco.items() if k != "layout"} == mpii
    with pytest.raises(ValueError, match="'coco18' is not a keypoint layout"):
        mf.build_manifest(entries, {}, {}, {}, True, layout="coco18")

    assert mf.records_layout(tmp_path).name == "mpii16"                  # no manifest: MPII records
    _write_manifest(tmp_path, mpii)
    assert mf.records_layout(tmp_path).name == "mpii16"                  # a manifest without a layout
    _write_manifest(tmp_path, coco)
    assert mf.records_layout(str(tmp_path)) is layouts.layout("coco17")
    _write_manifest(tmp_path, dict(coco, layout="coco18"))
    with pytest.raises(ValueError, match=r"manifest.json: layout 'coco18' is not a keypoint layout \(mpii16, coco17"):
        mf.records_layout(tmp_path)
    assert mf.records_layout("").name == "mpii16"                          # no directory given yet

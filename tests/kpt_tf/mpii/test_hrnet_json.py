"""HRNet's / mmpose's MPII json files (kpt_tf.mpii.hrnet_json): conventions proved on the real mmpose file
against the stacked-hourglass authors' valid.h5 and detections_our_format.mat; bad files refused naming the
record."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import scipy.io

from kpt_tf import geometry
from kpt_tf.mpii import annotations as sources
from kpt_tf.mpii import hrnet_json
from tests.conftest import REPO
from tests.conftest import require_shared_mpii as _require_shared


def test_mmpose_json_follows_the_release_conventions_of_valid_h5_and_detections_our_format():
    """The real file's 5 people are the first 5 validation people of valid.h5 and of detections_our_format.mat:
    its centre is the raw 1-based objpos (valid.h5 holds it adjusted), its scale the raw scale, its joints
    1-based, its joints_vis the annotated flag, not visibility."""
    shared = _require_shared()
    people = sources.read_annotations(shared / "mmpose_test_mpii.json", split="val")
    raw = json.loads((shared / "mmpose_test_mpii.json").read_text())
    assert len(people) == 5 and [p.image for p in people] == [r["image"] for r in raw]
    truth = scipy.io.loadmat(str(shared / "detections_our_format.mat"))
    with h5py.File(shared / "valid.h5", "r") as h5:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in h5["imgname"][:5]]
        centers, scales, visible = h5["center"][:5], h5["scale"][:5], h5["visible"][:5]
    assert names == [p.image for p in people]
    for k, person in enumerate(people):
        assert person.split == "val" and person.dataset_index == k and person.person_index == 0
        annotated = 1 - truth["jnt_missing"][:, k]
        np.testing.assert_array_equal(person.annotated, annotated)
        np.testing.assert_allclose(person.joints[annotated == 1] + 1.0, truth["pos_gt_src"][:, :, k][annotated == 1],
                                   atol=1e-3)   # 1-based in the file, as in the .mat
        center, scale = geometry.adjust_person_box(person.objpos, person.scale)
        np.testing.assert_allclose(center + 1.0, centers[k], atol=1e-4)   # valid.h5: adjusted, 1-based
        np.testing.assert_allclose(scale, scales[k], rtol=1e-6)   # 6 decimals
        np.testing.assert_array_equal(person.visible, person.annotated)   # the file has no occlusion flag
    # valid.h5 (and mpii_annotations.json) mark the right wrist and elbow of 051423444.jpg occluded; the json's
    # joints_vis is 1 there: it is the annotated flag.
    assert raw[2]["joints_vis"][10:12] == [1, 1] and list(visible[2][10:12]) == [0, 0]
    assert raw[2]["joints"][0] == [-1.0, -1.0] and raw[2]["joints_vis"][0] == 0 and people[2].annotated[0] == 0


def test_split_comes_from_the_file_name_or_is_given(tmp_path):
    record = {"image": "a.jpg", "center": [101.0, 201.0], "scale": 1.5, "joints": [[11.0, 21.0]] * 16,
              "joints_vis": [1] * 15 + [0]}
    for name, split in (("train.json", "train"), ("trainval.json", "train"), ("valid.json", "val"),
                        ("test.json", "test"), ("valid.json.gz", "val")):
        assert hrnet_json.split_from_file_name(tmp_path / name) == split
    (tmp_path / "valid.json").write_text(json.dumps([record, dict(record, center=[-1.0, -1.0])]))
    first, second = sources.read_annotations(tmp_path / "valid.json")
    assert first.split == "val" and (first.person_index, second.person_index) == (0, 1)   # rank in its image
    np.testing.assert_allclose(first.objpos, [100.0, 200.0])
    np.testing.assert_allclose(first.joints[:15], [[10.0, 20.0]] * 15)
    assert first.annotated.tolist() == [1] * 15 + [0] and not first.joints[15].any()
    assert second.objpos is None                                                   # HRNet's "no centre"
    assert [p.split for p in sources.read_annotations(tmp_path / "valid.json", split="train")] == ["train"] * 2
    # test.json: no joints needed (HRNet never reads them there); the people have none
    (tmp_path / "test.json").write_text(json.dumps([{"image": "t.jpg", "center": [50.0, 60.0], "scale": 0.9}]))
    (person,) = sources.read_annotations(tmp_path / "test.json")
    assert person.split == "test" and not person.annotated.any()
    (tmp_path / "people.json").write_text(json.dumps([record]))
    with pytest.raises(sources.AnnotationError, match=r"people.json: an HRNet/mmpose json whose split cannot be "
                                                      r"told from its name .*--json_split"):
        sources.read_annotations(tmp_path / "people.json")


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("center"), r"record 2: lacks center \(not an HRNet/mmpose record"),
    (lambda r: r.update(joints=[[1.0, 2.0]] * 15), r"record 2 \(c.jpg\): joints has shape \(15, 2\)"),
    (lambda r: r.update(joints_vis=[2] * 16), r"record 2 \(c.jpg\): joints_vis must be 16 flags of 0 or 1"),
    (lambda r: r.pop("joints_vis"), r"record 2 \(c.jpg\): lacks joints_vis \(only test.json people may\)"),
    (lambda r: r.update(center=[5.0]), r"record 2 \(c.jpg\): center \[5.0\] is not two numbers"),
    (lambda r: r.update(scale="big"), r"record 2 \(c.jpg\): scale 'big' is not a finite number"),
    (lambda r: (r.clear(), r.update(img_paths="c.jpg", joint_self=[[0, 0, 0]] * 16)), r"record 2: lacks image, "
                                                                                       r"center, scale"),
])
def test_a_record_of_the_wrong_format_is_refused_naming_it(tmp_path, change, message):
    good = {"image": "c.jpg", "center": [101.0, 201.0], "scale": 1.5, "joints": [[11.0, 21.0]] * 16,
            "joints_vis": [1] * 16}
    records = [dict(good, image="a.jpg"), dict(good, image="b.jpg"), dict(good)]
    change(records[2])
    (tmp_path / "train.json").write_text(json.dumps(records))
    with pytest.raises(sources.AnnotationError, match=message):
        sources.read_annotations(tmp_path / "train.json")


def test_converter_exits_non_zero_naming_the_bad_record_and_writes_nothing(tmp_path):
    (tmp_path / "images").mkdir()
    records = [{"image": "a.jpg", "center": [101.0, 201.0], "scale": 1.5, "joints": [[11.0, 21.0]] * 16,
                "joints_vis": [1] * 16}, {"image": "b.jpg", "center": [1.0, 2.0], "scale": 1.0, "joints": [[1, 2]] * 3,
                                          "joints_vis": [1] * 16}]
    (tmp_path / "valid.json").write_text(json.dumps(records))
    done = subprocess.run(
        [sys.executable, "-m", "data_prep.mpii_to_tfrecord", "--annotations", str(tmp_path / "valid.json"),
         "--images_dir", str(tmp_path / "images"), "--output_dir", str(tmp_path / "out")],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"mpii_to_tfrecord: error: {tmp_path / 'valid.json'} record 1 (b.jpg): joints has shape (3, 2), "
        "expected (16, 2)")
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()

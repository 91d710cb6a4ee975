"""MPII annotation files (kpt_tf.mpii.annotations): the release .mat, the json files, the val list, and the
json writer the generator uses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from kpt_tf import mpii
from kpt_tf.mpii import annotations as sources
from kpt_tf.mpii.coords import joint_self_rows
from tests.conftest import require_shared_mpii as _require_shared

# --------------------------------------------------------------------------------------------------
# The official release .mat
# --------------------------------------------------------------------------------------------------

def _struct_array(items: list[dict]) -> np.ndarray:
    """A 1 x n MATLAB struct array (savemat writes a structured object array as one)."""
    fields = list(items[0])
    array = np.empty((1, len(items)), dtype=[(f, object) for f in fields])
    for i, item in enumerate(items):
        for f in fields:
            array[0, i][f] = item[f]
    return array


EMPTY = np.zeros((0, 0))


def _point(pid, x, y, is_visible):
    return {"id": float(pid), "x": float(x), "y": float(y), "is_visible": is_visible}


def _rect(points, objpos=(100.0, 120.0), scale=0.8, box=(90.0, 40.0, 120.0, 75.0)):
    return {"x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3],
            "annopoints": EMPTY if points is None else {"point": _struct_array(points)},
            "scale": scale,
            "objpos": EMPTY if objpos is None else {"x": float(objpos[0]), "y": float(objpos[1])}}


def write_release_mat(path: Path):
    """A small file in the structure of mpii_human_pose_v1_u12_1.mat (RELEASE.annolist / img_train)."""
    single = _struct_array([_rect([_point(0, 101, 201, 1.0), _point(9, 111, 51, "0"), _point(8, 112, 71, EMPTY),
                                   _point(13, 131, 91, "1")])])               # one person: a 1x1 struct
    several = _struct_array([
        _rect([_point(2, 201, 151, 1.0), _point(3, 221, 152, "")], objpos=(210.0, 140.0)),
        _rect(None, objpos=(300.0, 140.0)),                                   # no annopoints
        _rect([_point(4, 50, 60, 1.0)], objpos=None),                         # objpos empty
    ])
    test_rect = _struct_array([{"scale": 1.0, "objpos": {"x": 10.0, "y": 10.0}}])  # test image: other fields
    annolist = _struct_array([
        {"image": {"name": "a.jpg"}, "annorect": single, "frame_sec": EMPTY, "vididx": EMPTY},
        {"image": {"name": "test.jpg"}, "annorect": test_rect, "frame_sec": EMPTY, "vididx": EMPTY},
        {"image": {"name": "b.jpg"}, "annorect": several, "frame_sec": EMPTY, "vididx": EMPTY},
        {"image": {"name": "c.jpg"}, "annorect": EMPTY, "frame_sec": EMPTY, "vididx": EMPTY},
    ])
    release = {"annolist": annolist, "img_train": np.array([[1, 0, 1, 1]], np.float64),
               "version": "12", "single_person": EMPTY, "act": EMPTY, "video_list": EMPTY}
    scipy.io.savemat(str(path), {"RELEASE": release})



def test_release_mat_reader_follows_the_official_structure(tmp_path):
    path = tmp_path / "mpii_human_pose_v1_u12_1.mat"
    write_release_mat(path)
    people = sources.read_annotations(path)
    assert [(p.split, p.dataset_index, p.image, p.person_index, p.image_index) for p in people] == [
        ("train", 0, "a.jpg", 0, 0), ("train", 1, "b.jpg", 0, 2), ("train", 2, "b.jpg", 1, 2),
        ("train", 3, "b.jpg", 2, 2)]
    first = people[0]
    np.testing.assert_array_equal(np.where(first.annotated)[0], [0, 8, 9, 13])
    np.testing.assert_allclose(first.joints[[0, 8, 9, 13]], [[100, 200], [111, 70], [110, 50], [130, 90]])
    # numeric 1 -> 1, '0' -> 0, empty -> 1 (upper neck / head top), '1' -> 1
    np.testing.assert_array_equal(first.visible[[0, 8, 9, 13]], [1, 1, 0, 1])
    np.testing.assert_allclose(first.objpos, [99, 119])
    np.testing.assert_allclose(first.head_box, [89, 39, 119, 74])
    assert first.scale == pytest.approx(0.8)
    assert people[1].visible[3] == 1 and people[1].annotated.sum() == 2  # '' counts as empty
    assert not people[2].annotated.any() and people[3].objpos is None

    val_list = tmp_path / "val.txt"
    val_list.write_text("# annolist_index people_index (1-based)\n3 1\n")
    people = sources.read_annotations(path, val_list)
    assert [(p.split, p.dataset_index, p.image, p.person_index) for p in people] == [
        ("train", 0, "a.jpg", 0), ("val", 0, "b.jpg", 0), ("train", 1, "b.jpg", 1), ("train", 2, "b.jpg", 2)]
    val_json = tmp_path / "val.json"
    val_json.write_text(json.dumps([{"isValidation": 1.0, "annolist_index": 3.0, "people_index": 1.0},
                                    {"isValidation": 0.0, "annolist_index": 1.0, "people_index": 1.0}]))
    assert [p.split for p in sources.read_annotations(path, val_json)] == ["train", "val", "train", "train"]
    val_list.write_text("2 1\n")  # a test-image person
    with pytest.raises(sources.AnnotationError, match="not people of training images"):
        sources.read_annotations(path, val_list)


def test_not_a_release_mat_is_refused(tmp_path):
    path = tmp_path / "other.mat"
    scipy.io.savemat(str(path), {"something": np.ones(3)})
    with pytest.raises(sources.AnnotationError, match="RELEASE"):
        sources.read_annotations(path)
    path.write_bytes(b"garbage")
    with pytest.raises(sources.AnnotationError, match="not a readable MATLAB file"):
        sources.read_annotations(path)
    # RELEASE present, but with other keys (img_train missing), or an image without a name
    scipy.io.savemat(str(path), {"RELEASE": {"annolist": np.ones(2), "version": "12"}})
    with pytest.raises(sources.AnnotationError, match=r"no RELEASE.annolist / RELEASE.img_train"):
        sources.read_annotations(path)
    good = tmp_path / "release.mat"
    write_release_mat(good)
    release = scipy.io.loadmat(str(good), struct_as_record=False, squeeze_me=True)["RELEASE"]
    annolist = [{"image": {"other": "x"}, "annorect": EMPTY}] + [
        {"image": {"name": a.image.name}, "annorect": EMPTY} for a in release.annolist[1:]]
    scipy.io.savemat(str(path), {"RELEASE": {"annolist": np.array(annolist, dtype=object).reshape(1, -1),
                                             "img_train": np.array([[1, 0, 1, 1]], np.float64)}})
    with pytest.raises(sources.AnnotationError, match=r"annolist\(1\).image.name is missing"):
        sources.read_annotations(path)



# --------------------------------------------------------------------------------------------------
# The json files
# --------------------------------------------------------------------------------------------------

def test_real_json_reader_and_detections_our_format_agree():
    shared = _require_shared()
    people = sources.read_annotations(shared / "mpii_annotations.json.gz")
    assert sum(p.split == "train" for p in people) == 22246 and sum(p.split == "val" for p in people) == 2958
    # The json marks an unannotated joint [0, 0, 0] and annotated-but-occluded ones with is_visible 0.
    annotated = np.array([p.annotated for p in people])
    visible = np.array([p.visible for p in people])
    assert annotated.all(1).mean() < 0.8 and (annotated & ~visible.astype(bool)).any()
    assert sources.attach_validation_head_boxes(people, shared / "detections_our_format.mat") == 2958
    gt = scipy.io.loadmat(str(shared / "detections_our_format.mat"))
    val = [p for p in people if p.split == "val"]
    np.testing.assert_allclose(val[5].head_box, gt["headboxes_src"][:, :, 5].reshape(-1) - 1.0)
    np.testing.assert_allclose(val[5].joints[val[5].annotated == 1] + 1.0,
                               gt["pos_gt_src"][:, :, 5][val[5].annotated == 1], atol=1e-3)



def test_json_writer_round_trips_through_the_json_reader(tmp_path):
    rng = np.random.default_rng(4)
    joints = rng.uniform(0, 300, (2, 16, 2))
    joints[0, 9] = [57.25, 0.0]                      # annotated on the top image row
    annotated = np.ones((2, 16), bool)
    annotated[1, [0, 5]] = False
    visible = annotated & (rng.random((2, 16)) < 0.7)
    records = [{"dataset": "synth_mpii", "isValidation": float(k), "img_paths": f"{k}.jpg",
                "objpos": [float(v) for v in mpii.to_one_based([100.0, 120.0])], "scale_provided": 1.5,
                "joint_self": joint_self_rows(joints[k], annotated[k], visible[k]),
                "annolist_index": float(k + 1), "people_index": 1.0,
                "headbox": mpii.to_one_based([[10.0, 20.0], [40.0, 60.0]]).tolist()} for k in range(2)]
    path = tmp_path / "annotations.json"
    mpii.write_json_annotations(path, records)
    text = path.read_text()
    assert text.startswith('[{"dataset": "synth_mpii","isValidation": 0.000,') and '"people_index": 1.000' in text
    people = mpii.read_json_annotations(path)
    assert [(p.split, p.dataset_index, p.image, p.person_index, p.image_index) for p in people] == [
        ("train", 0, "0.jpg", 0, 0), ("val", 0, "1.jpg", 0, 1)]
    for k, p in enumerate(people):
        np.testing.assert_array_equal(p.annotated, annotated[k])
        np.testing.assert_array_equal(p.visible, visible[k])
        np.testing.assert_allclose(p.joints[annotated[k]], joints[k][annotated[k]], atol=5e-4)
        assert (p.joints[~annotated[k]] == 0).all()
        np.testing.assert_allclose(p.objpos, [100.0, 120.0])
        np.testing.assert_allclose(p.head_box, [10.0, 20.0, 40.0, 60.0])


def test_json_records_missing_keys_or_not_objects_are_refused(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"img_paths": "a.jpg"}]))
    with pytest.raises(mpii.AnnotationError, match="record 0 lacks joint_self, scale_provided"):
        sources.load_json_records(path, ("img_paths", "joint_self", "scale_provided"))
    with pytest.raises(mpii.AnnotationError, match="not an mpii_annotations person record"):
        mpii.read_json_annotations(path)
    path.write_text(json.dumps([{"img_paths": "a.jpg", "joint_self": [[1, 2, 1]] * 15}]))
    with pytest.raises(mpii.AnnotationError, match=r"record 0: joint_self has shape \(15, 3\)"):
        mpii.read_json_annotations(path)
    path.write_text(json.dumps([3]))
    with pytest.raises(mpii.AnnotationError, match="record 0 is not an object"):
        sources.load_json_records(path, ("img_paths",))

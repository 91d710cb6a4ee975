"""MPII's test people (release .mat) and the test-server submission file (kpt_tf.mpii.submission)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from kpt_tf import geometry
from kpt_tf.mpii import annotations as sources
from kpt_tf.mpii import submission as sub
from tests.kpt_tf.mpii.test_annotations import EMPTY, _point, _rect, _struct_array

# (name, is_train, rectangles, single_person ids (1-based)); a test rectangle is (objpos or None, scale) in
# 1-based pixels, with the fields the release gives test rectangles (scale, objpos).
RELEASE_IMAGES = [
    ("train_a.jpg", True, None, [1]),
    ("test_a.jpg", False, [((101.0, 121.0), 0.62), ((231.0, 111.0), 0.55), ((161.0, 181.0), 0.4)], [2, 1]),
    ("train_b.jpg", True, None, []),
    ("test_b.jpg", False, [], []),                                       # a test image without people
    ("test_c.jpg", False, [(None, 0.7), ((201.0, 131.0), 0.75)], [2]),   # rectangle 1: no objpos
    ("test_d.jpg", False, [((151.0, 116.0), 0.8)], [1]),
]
IMAGE_SIZE = (320, 240)


def release_test_people(images=RELEASE_IMAGES):
    """(image, annolist index, annorect index, objpos 0-based, scale) of the single-person test people with an
    objpos, in release order: what read_release_mat returns as split 'test'."""
    out = []
    for image_index, (name, is_train, rects, single) in enumerate(images):
        for r in sorted(single):
            if not is_train and rects[r - 1][0] is not None:
                objpos, scale = rects[r - 1]
                out.append((name, image_index, r - 1, np.array(objpos) - 1.0, scale))
    return out


def write_release_with_test_people(path: Path, images_dir: Path | None = None, seed: int = 0):
    """A release .mat in the official structure with training and test images, single_person lists (a cell
    array of column vectors), test rectangles with and without objpos, and a test image without people; with
    `images_dir`, textured JPEGs of IMAGE_SIZE for every image."""
    annolist = []
    single_person = np.empty((len(RELEASE_IMAGES), 1), dtype=object)
    for k, (name, is_train, rects, single) in enumerate(RELEASE_IMAGES):
        if is_train:
            annorect = _struct_array([_rect([_point(j, 60 + 9 * j, 50 + 8 * j, 1.0) for j in range(16)],
                                            objpos=(130.0, 120.0), scale=0.7)])
        elif rects:
            annorect = _struct_array([{"scale": scale, "objpos": EMPTY if objpos is None else
                                       {"x": objpos[0], "y": objpos[1]}} for objpos, scale in rects])
        else:
            annorect = EMPTY
        annolist.append({"image": {"name": name}, "annorect": annorect, "frame_sec": EMPTY, "vididx": EMPTY})
        single_person[k, 0] = np.array(single, np.float64).reshape(-1, 1) if single else EMPTY
    release = {"annolist": _struct_array(annolist),
               "img_train": np.array([[float(is_train) for _, is_train, _, _ in RELEASE_IMAGES]]),
               "version": "12", "single_person": single_person, "act": EMPTY, "video_list": EMPTY}
    scipy.io.savemat(str(path), {"RELEASE": release})
    if images_dir is not None:
        import cv2

        from tests.data_prep.test_convert import _texture

        images_dir.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        for name, *_ in RELEASE_IMAGES:
            cv2.imwrite(str(images_dir / name), _texture(rng, IMAGE_SIZE[1], IMAGE_SIZE[0]))
    return path


def test_release_test_people_are_its_single_person_rectangles(tmp_path):
    path = write_release_with_test_people(tmp_path / "mpii_human_pose_v1_u12_1.mat")
    people = sources.read_annotations(path)
    assert [(p.split, p.dataset_index, p.image) for p in people if p.split == "train"] == [
        ("train", 0, "train_a.jpg"), ("train", 1, "train_b.jpg")]
    test = [p for p in people if p.split == "test"]
    expected = release_test_people()
    assert len(expected) == 4
    assert [(p.dataset_index, p.image, p.image_index, p.person_index) for p in test] == [
        (k, name, image_index, ridx) for k, (name, image_index, ridx, _, _) in enumerate(expected)]
    for p, (_, _, _, objpos, scale) in zip(test, expected):
        np.testing.assert_allclose(p.objpos, objpos)
        assert p.scale == pytest.approx(scale) and not p.annotated.any() and p.head_box is None
    # test_c's rectangle 1 has no objpos and is not a single person; test_a's rectangle 3 is not one either
    assert ("test_c.jpg", 0) not in {(p.image, p.person_index) for p in test}


def test_single_person_naming_a_missing_rectangle_is_refused(tmp_path):
    path = write_release_with_test_people(tmp_path / "release.mat")
    mat = scipy.io.loadmat(str(path))
    mat["RELEASE"]["single_person"][0, 0][5, 0] = np.array([[2.0]])     # test_d has one rectangle
    scipy.io.savemat(str(path), {"RELEASE": mat["RELEASE"]})
    with pytest.raises(sources.AnnotationError, match=r"single_person\{6\} names rectangle 2 but the image has 1"):
        sources.read_annotations(path)


def _record_people(template, order):
    """RecordPerson of each rectangle in `order` as a converted record stores it (adjusted, float32)."""
    people = []
    for k, rect in enumerate(order):
        center, scale = geometry.adjust_person_box(rect.objpos, rect.scale)
        people.append(sub.RecordPerson(k, rect.image, center.astype(np.float32), float(np.float32(scale))))
    return people


def test_submission_holds_the_release_test_list_with_every_prediction(tmp_path):
    release = write_release_with_test_people(tmp_path / "release.mat")
    template = sub.load_template(release)
    assert list(template.test_images) == [1, 3, 4, 5]
    assert [(r.image, r.person_index, r.single_person) for r in template.rectangles] == [
        ("test_a.jpg", 0, True), ("test_a.jpg", 1, True), ("test_a.jpg", 2, False), ("test_c.jpg", 1, True),
        ("test_d.jpg", 0, True)]
    # Records in another order than the release's, including a non-single-person rectangle (HRNet's test.json
    # holds every test rectangle with an objpos): each finds its own rectangle.
    order = [template.rectangles[i] for i in (4, 2, 0, 3, 1)]
    matched = sub.match_records(template, _record_people(template, order))
    assert [matched[k] for k in range(5)] == order
    rng = np.random.default_rng(3)
    predictions = {rect.key: rng.uniform(0, 300, (16, 2)) for rect in order}
    out = tmp_path / "pred_keypoints_mpii.mat"
    assert sub.write_submission(out, template, predictions) == 5

    # Read back with scipy as MATLAB structures: `pred` is the release's annolist of the test images.
    raw = scipy.io.loadmat(str(out), struct_as_record=True, squeeze_me=False)
    assert [k for k in raw if not k.startswith("__")] == ["pred"]
    pred = raw["pred"]
    assert pred.shape == (1, 4) and set(pred.dtype.names) == {"image", "annorect", "frame_sec", "vididx"}
    assert [str(pred["image"][0, k]["name"][0, 0][0]) for k in range(4)] == [
        "test_a.jpg", "test_b.jpg", "test_c.jpg", "test_d.jpg"]
    assert pred["annorect"][0, 1].size == 0                              # test_b: still no people
    for rect in template.rectangles:
        rects = pred["annorect"][0, list(template.test_images).index(rect.image_index)]
        annorect = rects[0, rect.person_index]
        objpos = annorect["objpos"][0, 0]
        assert (float(objpos["x"][0, 0]), float(objpos["y"][0, 0])) == tuple(rect.objpos + 1.0)  # kept as is
        points = annorect["annopoints"][0, 0]["point"]
        assert points.shape == (1, 16)
        ids = [int(points["id"][0, j][0, 0]) for j in range(16)]
        xy = np.array([[points["x"][0, j][0, 0], points["y"][0, j][0, 0]] for j in range(16)])
        assert ids == list(range(16))
        np.testing.assert_array_equal(xy, predictions[rect.key] + 1.0)   # 1-based in the file
    no_objpos = pred["annorect"][0, 2][0, 0]
    assert no_objpos["annopoints"].size == 0 and no_objpos["objpos"].size == 0

    # ... and with the project's own reader (the release's annorect reader): same people, same points.
    count, people = sub.read_submission(out)
    assert count == 4
    assert [(p.image, p.person_index) for p in people] == [(r.image, r.person_index) for r in template.rectangles]
    for p in people:
        key = (int(template.test_images[p.test_position]), p.person_index)
        assert p.has_point.all()
        np.testing.assert_allclose(p.joints, predictions[key], rtol=0, atol=1e-12)


def test_records_that_do_not_map_one_to_one_are_refused(tmp_path):
    template = sub.load_template(write_release_with_test_people(tmp_path / "release.mat"))
    single = template.single_person
    people = _record_people(template, single)
    assert len(sub.match_records(template, people)) == 4
    with pytest.raises(ValueError, match=r"1 of the 4 single-person test people .* have no record.*test_c.jpg "
                                         r"annorect\(2\).*the converter skipped 1 \(image file missing\)"):
        sub.match_records(template, people[:2] + people[3:], skipped=[{"reason": "image file missing"}])
    moved = people[:1] + [sub.RecordPerson(1, people[1].image, people[1].center + 3.0, people[1].scale)] + people[2:]
    with pytest.raises(ValueError, match=r"record of test person 1 \(test_a.jpg\) matches no test rectangle"):
        sub.match_records(template, moved)
    twice = people + [sub.RecordPerson(9, people[0].image, people[0].center, people[0].scale)]
    with pytest.raises(ValueError, match=r"record of test person 9 .* and test person 0 are both annolist\(2\)"):
        sub.match_records(template, twice)


def test_a_release_without_test_images_or_a_foreign_file_is_refused(tmp_path):
    with pytest.raises(sources.AnnotationError, match="does not exist"):
        sub.load_template(tmp_path / "none.mat")
    from tests.kpt_tf.mpii.test_annotations import write_release_mat

    path = tmp_path / "release.mat"
    write_release_mat(path)
    mat = scipy.io.loadmat(str(path))
    mat["RELEASE"]["img_train"][0, 0][:] = 1
    scipy.io.savemat(str(path), {"RELEASE": mat["RELEASE"]})
    with pytest.raises(sources.AnnotationError, match="no test image"):
        sub.load_template(path)
    scipy.io.savemat(str(tmp_path / "x.mat"), {"other": np.ones(2)})
    with pytest.raises(ValueError, match="has no variable 'pred'"):
        sub.read_submission(tmp_path / "x.mat")

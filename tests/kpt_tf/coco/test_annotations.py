"""kpt_tf.coco.annotations: COCO person_keypoints json -> people, with HRNet's box, crowd and visibility rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kpt_tf.coco import CROWD, read_coco_annotations
from kpt_tf.coco.annotations import EMPTY_BOX
from kpt_tf.layouts import layout
from kpt_tf.mpii.person import AnnotationError, person_box

COCO_NAMES = list(layout("coco17").joints)


def keypoints(points):
    """{joint name: (x, y, v)} -> COCO's flat 51 numbers."""
    flat = [0.0] * 51
    for name, (x, y, v) in points.items():
        k = COCO_NAMES.index(name)
        flat[3 * k: 3 * k + 3] = [x, y, v]
    return flat


def coco_file(tmp_path, annotations, categories=None):
    content = {
        "images": [{"id": 7, "file_name": "000007.jpg", "width": 640, "height": 480},
                   {"id": 9, "file_name": "000009.jpg", "width": 300, "height": 200}],
        "annotations": annotations,
        "categories": categories if categories is not None else [
            {"id": 1, "name": "person", "keypoints": COCO_NAMES, "skeleton": []},
            {"id": 2, "name": "bicycle"}],
    }
    path = tmp_path / "person_keypoints_val.json"
    path.write_text(json.dumps(content))
    return path


def annotation(id_, image_id, bbox, points, **extra):
    return {"id": id_, "image_id": image_id, "category_id": 1, "bbox": bbox, "area": bbox[2] * bbox[3],
            "iscrowd": 0, "num_keypoints": sum(v > 0 for _, _, v in points.values()),
            "keypoints": keypoints(points), **extra}


def test_people_keep_file_order_visibility_and_the_clipped_box(tmp_path):
    path = coco_file(tmp_path, [
        annotation(1, 7, [100, 50, 80, 200], {"nose": (140, 60, 2), "left_wrist": (110, 150, 1)}),
        {"id": 5, "image_id": 7, "category_id": 2, "bbox": [0, 0, 10, 10]},          # a bicycle: not a person
        annotation(2, 9, [-20, 150, 100, 90], {"right_ankle": (40, 195, 2)}),          # leaves the image
        annotation(3, 7, [300, 100, 50, 50], {}),                                       # no labelled keypoint
        annotation(4, 7, [0, 0, 640, 480], {}, iscrowd=1),
    ])
    people = read_coco_annotations(path, "val")
    assert [p.dataset_index for p in people] == [0, 1, 2, 3]
    assert [(p.image, p.person_index, p.image_index) for p in people] == [
        ("000007.jpg", 0, 0), ("000009.jpg", 0, 1), ("000007.jpg", 1, 0), ("000007.jpg", 2, 0)]
    first = people[0]
    nose, wrist = COCO_NAMES.index("nose"), COCO_NAMES.index("left_wrist")
    assert first.joints.shape == (17, 2) and first.annotated.sum() == 2 and first.visible.sum() == 1
    assert first.annotated[wrist] == 1 and first.visible[wrist] == 0 and first.visible[nose] == 1
    np.testing.assert_allclose(first.joints[nose], [140, 60])
    np.testing.assert_allclose(first.box, [100, 50, 179, 249])            # x1 + w - 1, y1 + h - 1
    # HRNet's clean box: x1 = max(0, x) = 0, x2 = min(width - 1, x1 + w - 1) = 99, y2 = min(199, 150 + 89) = 199
    np.testing.assert_allclose(people[1].box, [0, 150, 99, 199])
    assert [p.source_skip for p in people] == [None, None, None, CROWD]
    assert not people[2].annotated.any()                                  # the converter skips it: no joint


def test_the_crop_box_is_hrnets_at_aspect_ratio_one(tmp_path):
    path = coco_file(tmp_path, [annotation(1, 7, [100, 50, 80, 200], {"nose": (140, 60, 2)})])
    center, scale = person_box(read_coco_annotations(path, "val")[0])
    # HRNet _xywh2cs on the clean box (x 100, y 50, w 79, h 199): centre (139.5, 149.5), side max(w, h) x 1.25
    np.testing.assert_allclose(center, [139.5, 149.5])
    assert scale == pytest.approx(199 * 1.25 / 200)


def test_an_empty_box_is_a_counted_skip_and_malformed_files_are_refused(tmp_path):
    path = coco_file(tmp_path, [annotation(1, 7, [700, 10, 30, 30], {"nose": (705, 15, 2)})])   # right of the image
    (person,) = read_coco_annotations(path, "val")
    assert person.source_skip == EMPTY_BOX and person.box is None

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(AnnotationError, match="bad.json: not a COCO keypoint file"):
        read_coco_annotations(bad, "val")
    bad.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(AnnotationError, match="'images', 'annotations' and 'categories'"):
        read_coco_annotations(bad, "val")
    wrong_names = [{"id": 1, "name": "person", "keypoints": COCO_NAMES[::-1]}]
    with pytest.raises(AnnotationError, match="are not COCO's 17"):
        read_coco_annotations(coco_file(tmp_path, [], wrong_names), "val")
    with pytest.raises(AnnotationError, match="names image 8, which the file does not list"):
        read_coco_annotations(coco_file(tmp_path, [annotation(1, 8, [0, 0, 5, 5], {})]), "val")
    short = annotation(1, 7, [0, 0, 5, 5], {})
    short["keypoints"] = short["keypoints"][:50]
    with pytest.raises(AnnotationError, match="expected 'keypoints' \\(51 numbers\\)"):
        read_coco_annotations(coco_file(tmp_path, [short]), "val")

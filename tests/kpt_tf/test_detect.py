"""kpt_tf.detect: box suppression, COCO detection-results files, the HOG people detector on real photographs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from kpt_tf.detect import BoxesFile, HOGPeopleDetector, WholeImage, make_detector, suppress
from tests.conftest import require_shared_mpii


def test_suppress_keeps_the_best_of_overlapping_boxes_and_drops_low_scores():
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9], [50, 50, 60, 60]]
    scores = [0.5, 0.9, 0.7, 0.8, 0.05]
    kept, kept_scores = suppress(boxes, scores, score_threshold=0.1, iou_threshold=0.3)
    # [1,1,11,11] (0.9) suppresses both of its neighbours (IoU 0.68, 0.61); the far box stays; 0.05 is below 0.1
    np.testing.assert_array_equal(kept, [[1, 1, 11, 11], [20, 20, 30, 30]])
    np.testing.assert_allclose(kept_scores, [0.9, 0.7])
    kept, _ = suppress(boxes, scores, iou_threshold=0.7)
    # at 0.7 [0,0,10,9] (0.8) survives [1,1,11,11] (0.61) and then suppresses [0,0,10,10] (0.9 overlap)
    np.testing.assert_array_equal(kept, [[1, 1, 11, 11], [0, 0, 10, 9], [20, 20, 30, 30], [50, 50, 60, 60]])
    assert suppress([], [])[0].shape == (0, 4)


def test_a_coco_detection_results_file_is_read_by_file_stem_or_through_a_coco_images_list(tmp_path):
    entries = [{"image_id": 397133, "category_id": 1, "bbox": [10, 20, 30, 40], "score": 0.9},
               {"image_id": 397133, "category_id": 18, "bbox": [0, 0, 5, 5], "score": 0.99},    # a dog
               {"image_id": "37777", "bbox": [1, 2, 3, 4]}]                                     # id as digits
    (tmp_path / "dets.json").write_text(json.dumps(entries))
    boxes = BoxesFile(tmp_path / "dets.json")
    assert boxes.other_categories == 1
    found, scores = boxes.boxes_for("000000397133.jpg")
    np.testing.assert_allclose(found, [[10, 20, 40, 60]])
    np.testing.assert_allclose(scores, [0.9])
    np.testing.assert_allclose(boxes.boxes_for("000000037777.jpg")[1], [1.0])     # no score: 1
    assert boxes.boxes_for("holiday.jpg")[0].shape == (0, 4)
    boxes.check_covers(["000000397133.jpg", "000000037777.jpg", "holiday.jpg"])
    with pytest.raises(ValueError, match="1 of its image ids name no input image"):
        boxes.check_covers(["000000397133.jpg"])
    (tmp_path / "coco.json").write_text(json.dumps({"images": [{"id": 397133, "file_name": "kitchen.jpg"},
                                                               {"id": 37777, "file_name": "street.png"}]}))
    by_list = BoxesFile(tmp_path / "dets.json", tmp_path / "coco.json")
    np.testing.assert_allclose(by_list.boxes_for("photos/kitchen.jpg")[0], [[10, 20, 40, 60]])
    assert by_list.boxes_for("000000397133.jpg")[0].shape == (0, 4)
    (tmp_path / "bad.json").write_text(json.dumps([{"image_id": 1, "bbox": [1, 2, float("nan"), 4]}])
                                       .replace("NaN", "1e999"))
    with pytest.raises(ValueError, match="entry 0: bbox must be 4 finite numbers"):
        BoxesFile(tmp_path / "bad.json")
    (tmp_path / "text.json").write_text("image_id,bbox\n")
    with pytest.raises(ValueError, match="text.json: not JSON"):
        BoxesFile(tmp_path / "text.json")
    with pytest.raises(ValueError, match="--detector 'yolo': not one of"):
        make_detector("yolo")


def test_the_whole_image_is_one_person():
    boxes, scores = WholeImage()(np.zeros((30, 40, 3), np.uint8))
    np.testing.assert_array_equal(boxes, [[0, 0, 39, 29]])
    np.testing.assert_array_equal(scores, [1.0])


def test_hog_finds_people_in_real_photographs_inside_the_image():
    """OpenCV's HOG detector on the five real MPII photographs: boxes inside the image, and at least the two people
    it finds at this setting overlap the annotated joints (BUILD_NOTES: 2 of 5 with IoU > 0.3)."""
    shared = require_shared_mpii()
    detector = HOGPeopleDetector()
    hits = 0
    for person in json.loads((shared / "mmpose_test_mpii.json").read_text()):
        rgb = cv2.cvtColor(cv2.imread(str(shared / "images" / person["image"])), cv2.COLOR_BGR2RGB)
        boxes, scores = suppress(*detector(rgb))
        assert len(boxes) == len(scores)
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= rgb.shape[1]) and np.all(boxes[:, 3] <= rgb.shape[0])
        joints = np.asarray(person["joints"])[np.asarray(person["joints_vis"]) > 0]
        target = [*joints.min(0), *joints.max(0)]
        hits += any(_iou(target, box) > 0.3 for box in boxes)
    assert hits >= 2


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h)

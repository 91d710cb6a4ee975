"""COCO keypoint evaluation (kpt_tf.metrics.coco): pycocotools' OKS AP through our files and refusals, HRNet's
rescoring and OKS-NMS in the results writer, and `python -m kpt_tf.evaluate --coco_gt --coco_preds`."""

import json
import math
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from kpt_tf.metrics import coco
from tests.conftest import REPO

KEYPOINT_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle"]
# A standing person in box-relative coordinates, COCO's joint order (the person's left on the image's right).
POSE = np.array([[.50, .08], [.55, .06], [.45, .06], [.60, .08], [.40, .08], [.70, .22], [.30, .22], [.80, .38],
                 [.20, .38], [.85, .52], [.15, .52], [.62, .55], [.38, .55], [.63, .75], [.37, .75], [.64, .95],
                 [.36, .95]])
# (image id, person box x, y, w, h): 10 people on 4 images, medium (32^2..96^2 px of area) and large ones.
PEOPLE = [(1001, 50, 60, 120, 300), (1001, 300, 80, 90, 200), (1001, 500, 200, 50, 110),
          (1002, 100, 100, 160, 320), (1002, 350, 150, 60, 130),
          (1003, 20, 40, 70, 150), (1003, 200, 30, 140, 280), (1003, 420, 60, 80, 170),
          (1004, 60, 50, 110, 260), (1004, 300, 120, 45, 100)]


def make_ground_truth(seed: int = 0):
    """A COCO keypoint ground truth like person_keypoints_val2017.json, in small: 10 people with 17 keypoints
    labelled 0 (not labelled, stored as 0, 0), 1 (occluded) or 2 (visible), a crowd region and a person without a
    labelled keypoint. -> (the JSON dict, true positions (10, 17, 2) of the 10 people, hidden joints included)."""
    rng = np.random.default_rng(seed)
    annotations, positions = [], []
    for index, (image_id, x, y, w, h) in enumerate(PEOPLE):
        joints = np.array([x, y]) + POSE * np.array([w, h]) + rng.normal(0, 2, (17, 2))
        visibility = rng.choice([0, 1, 2], size=17, p=[0.15, 0.25, 0.6])
        visibility[[5, 6, 11, 12]] = 2          # shoulders and hips always labelled: every person counts
        stored = np.where(visibility[:, None] > 0, np.round(joints), 0)
        keypoints = np.concatenate([stored, visibility[:, None]], axis=1).astype(int).ravel().tolist()
        annotations.append({"id": 5000 + index, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                            "keypoints": keypoints, "num_keypoints": int((visibility > 0).sum()),
                            "area": 0.6 * w * h, "bbox": [x, y, w, h],
                            "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
        positions.append(joints)
    annotations.append({"id": 9001, "image_id": 1002, "category_id": 1, "iscrowd": 1, "keypoints": [0] * 51,
                        "num_keypoints": 0, "area": 20000.0, "bbox": [400, 50, 200, 150],
                        "segmentation": {"counts": [30000, 20000, 257200], "size": [480, 640]}})
    annotations.append({"id": 9002, "image_id": 1004, "category_id": 1, "iscrowd": 0, "keypoints": [0] * 51,
                        "num_keypoints": 0, "area": 900.0, "bbox": [500, 300, 30, 40],
                        "segmentation": [[500, 300, 530, 300, 530, 340, 500, 340]]})
    ground_truth = {
        "info": {"description": "kpt_tf test"}, "licenses": [],
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in (1001, 1002, 1003,
                                                                                                1004)],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": KEYPOINT_NAMES,
                        "skeleton": [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7]]}],
    }
    return ground_truth, np.array(positions)


def people_of(ground_truth):
    return [a for a in ground_truth["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]


def write(path, value):
    path.write_text(json.dumps(value))
    return path


def jittered_predictions(ground_truth, seed: int = 1):
    """The ground-truth people moved by noise of 0.5 % to 8 % of their size, scores at random, one person missed
    and one false positive: an AP well inside (0, 1)."""
    rng = np.random.default_rng(seed)
    predictions = []
    for person, spread in zip(people_of(ground_truth)[:-1], np.linspace(0.005, 0.08, 9), strict=True):
        joints = np.array(person["keypoints"], dtype=float).reshape(17, 3)
        joints[:, :2] += rng.normal(0, spread * math.sqrt(person["area"]), (17, 2))
        joints[:, 2] = rng.uniform(0.1, 1.0, 17)
        predictions.append({"image_id": person["image_id"], "category_id": 1,
                            "keypoints": joints.ravel().tolist(), "score": float(rng.uniform(0.3, 1.0))})
    false_positive = dict(predictions[5], keypoints=(np.array(predictions[5]["keypoints"]) + [150, 120, 0] * 17)
                          .tolist(), score=0.95)
    return predictions + [false_positive]


@pytest.fixture()
def ground_truth_file(tmp_path):
    return write(tmp_path / "person_keypoints.json", make_ground_truth()[0])


# --- (a), (b): pycocotools' figures through our files ---------------------------------------------------------

def test_ground_truth_fed_back_scores_one(tmp_path, ground_truth_file):
    ground_truth = json.loads(ground_truth_file.read_text())
    predictions = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
                   for a in people_of(ground_truth)]
    result = coco.evaluate_coco_files(ground_truth_file, write(tmp_path / "preds.json", predictions))
    assert list(result) == [*coco.STAT_NAMES, "images", "people", "people_ignored", "predictions"]
    assert all(result[name] == 1.0 for name in coco.STAT_NAMES), result
    assert (result["images"], result["people"], result["people_ignored"], result["predictions"]) == (4, 10, 2, 10)


def test_jittered_predictions_give_exactly_pycocotools_own_figures(tmp_path, ground_truth_file):
    preds_file = write(tmp_path / "preds.json", jittered_predictions(json.loads(ground_truth_file.read_text())))
    captured = []

    class Sink:
        def write(self, text):
            captured.append(text)

        def flush(self):
            pass

    result = coco.evaluate_coco_files(ground_truth_file, preds_file, pycocotools_output=Sink())
    assert "Average Precision" in "".join(captured)     # pycocotools' own text went where it was asked to
    reference_gt = COCO(str(ground_truth_file))
    reference = COCOeval(reference_gt, reference_gt.loadRes(str(preds_file)), "keypoints")
    reference.evaluate()
    reference.accumulate()
    reference.summarize()
    assert [result[name] for name in coco.STAT_NAMES] == [float(v) for v in reference.stats]
    assert 0.2 < result["AP"] < 0.9 and result["AR"] < 1.0 and result["APm"] != result["APl"]
    table = coco.format_table(result, "title line")
    assert table.startswith("title line\n") and "AP50  OKS 0.50, all areas" in table
    assert f"{result['AP']:.3f}" in table and len(table.splitlines()) == 14


def test_pycocotools_prints_nothing_unless_asked(ground_truth_file, tmp_path, capsys):
    ground_truth = json.loads(ground_truth_file.read_text())
    predictions = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 0.5}
                   for a in people_of(ground_truth)[:3]]
    result = coco.evaluate_coco_files(ground_truth_file, write(tmp_path / "preds.json", predictions))
    assert capsys.readouterr().out == ""
    assert result["AP"] < 1.0 and result["AP50"] < 1.0      # 3 of 10 people found


# --- (c) the results writer: HRNet's rescoring and OKS-NMS ----------------------------------------------------

def test_rescoring_follows_hrnet_on_a_hand_example():
    scores = np.full((3, 17), 0.2)          # exactly the threshold: not counted (HRNet's test is t_s > in_vis_thre)
    scores[0, :4] = [0.9, 0.5, 0.1, 0.3]
    scores[2, 0] = 0.6
    rescored = coco.rescore(scores, [0.8, 0.7, 0.5])
    # person 0: 0.8 x mean(0.9, 0.5, 0.3); person 1: no joint above 0.2, so 0; person 2: 0.5 x 0.6
    np.testing.assert_allclose(rescored, [0.8 * (0.9 + 0.5 + 0.3) / 3, 0.0, 0.3], rtol=0, atol=1e-12)


def _standing(x, y, w, h):
    return np.array([x, y]) + POSE * np.array([w, h])


def test_oks_nms_drops_a_near_duplicate_and_keeps_a_distinct_person():
    sigmas = coco.coco_oks_sigmas()
    person = _standing(100, 100, 100, 200)
    people = np.stack([person + 1.0, person, _standing(300, 120, 90, 190)])
    areas = np.full(3, 0.6 * 100 * 200)
    assert coco.oks_nms(people, [0.8, 0.9, 0.5], areas, sigmas).tolist() == [1, 2]
    assert coco.oks_nms(people, [0.95, 0.9, 0.5], areas, sigmas).tolist() == [0, 2]
    # One joint (the nose) 5 px off on a person of area 10,000: OKS = (16 + exp(-25 / (2 * 10000 * (2 s)^2))) / 17.
    moved = np.stack([person, person])
    moved[1, 0, 0] += 5.0
    oks = (16 + math.exp(-25 / (2 * 10000 * (2 * sigmas[0]) ** 2))) / 17
    assert coco.oks_nms(moved, [0.9, 0.8], [10000, 10000], sigmas, threshold=oks - 1e-6).tolist() == [0]
    assert coco.oks_nms(moved, [0.9, 0.8], [10000, 10000], sigmas, threshold=oks + 1e-6).tolist() == [0, 1]


def test_written_results_hold_rescored_people_after_nms(tmp_path):
    person = _standing(100, 100, 100, 200)
    keypoints = np.stack([person, person + 0.5, _standing(300, 120, 90, 190), person])
    scores = np.full((4, 17), 0.9)
    scores[1] = 0.5
    scores[2, :2] = 0.1
    written = coco.write_coco_results(tmp_path / "out" / "results.json", [7, 7, 7, 8], keypoints, scores,
                                      box_scores=[0.9, 0.95, 0.6, 1.0])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written == 3 and [r["image_id"] for r in results] == [7, 7, 8]
    # image 7: person 0 (0.9 x 0.9 = 0.81) beats its duplicate 1 (0.95 x 0.5 = 0.475); person 2: 0.6 x 0.9
    assert [r["score"] for r in results] == pytest.approx([0.81, 0.54, 0.9])
    assert all(r["category_id"] == 1 and set(r) == {"image_id", "category_id", "keypoints", "score"}
               for r in results)
    first = np.array(results[0]["keypoints"]).reshape(17, 3)
    np.testing.assert_allclose(first[:, :2], person)
    np.testing.assert_allclose(first[:, 2], 0.9)                    # the joint's score in the visibility slot
    np.testing.assert_allclose(np.array(results[1]["keypoints"]).reshape(17, 3)[:2, 2], 0.1)


def test_written_results_of_the_true_poses_score_one(tmp_path, ground_truth_file):
    ground_truth, positions = make_ground_truth()
    image_ids = [a["image_id"] for a in people_of(ground_truth)]
    out = tmp_path / "results.json"
    assert coco.write_coco_results(out, image_ids, positions, np.ones((10, 17))) == 10
    result = coco.evaluate_coco_files(ground_truth_file, out)
    assert result["AP"] == 1.0 and result["AR"] == 1.0


def test_writer_refuses_bad_arrays(tmp_path):
    person = _standing(100, 100, 100, 200)[None]
    with pytest.raises(ValueError, match=r"keypoints of shape \(1, 16, 2\)"):
        coco.write_coco_results(tmp_path / "r.json", [1], person[:, :16], np.ones((1, 16)))
    with pytest.raises(ValueError, match=r"scores of shape \(1, 16\)"):
        coco.write_coco_results(tmp_path / "r.json", [1], person, np.ones((1, 16)))
    with pytest.raises(ValueError, match="keypoints hold a value that is not finite"):
        coco.write_coco_results(tmp_path / "r.json", [1], person * np.nan, np.ones((1, 17)))
    with pytest.raises(ValueError, match="image_ids must be integers"):
        coco.write_coco_results(tmp_path / "r.json", [1.5], person, np.ones((1, 17)))
    assert not (tmp_path / "r.json").exists()


# --- (d) refusals -------------------------------------------------------------------------------------------

def _without(mapping, key):
    return {k: v for k, v in mapping.items() if k != key}


def bad_ground_truths():
    good = make_ground_truth()[0]
    no_keypoint_names = dict(good, categories=[{"id": 1, "name": "person", "supercategory": "person"}])
    first = good["annotations"][0]
    return {
        "not JSON (a pickle)": (pickle.dumps(good), r"ground truth file is not JSON"),
        "a list": (json.dumps([1, 2]), r"not a COCO ground truth .* holds a list \(a results file given"),
        "no annotations": (json.dumps(_without(good, "annotations")), r"no 'annotations' list"),
        "no keypoint category": (json.dumps(no_keypoint_names), r"0 categories list keypoints; .* person category"),
        "annotation without num_keypoints": (
            json.dumps(dict(good, annotations=[_without(first, "num_keypoints")])),
            r"annotation 0 \(id 5000\) has no num_keypoints"),
    }


@pytest.mark.parametrize("case", list(bad_ground_truths()))
def test_bad_ground_truth_is_refused_by_name(tmp_path, case):
    content, message = bad_ground_truths()[case]
    gt = tmp_path / "bad_gt.json"
    gt.write_bytes(content if isinstance(content, bytes) else content.encode())
    preds = write(tmp_path / "preds.json", [])
    with pytest.raises(ValueError, match=message) as error:
        coco.evaluate_coco_files(gt, preds)
    assert str(gt) in str(error.value)


def bad_predictions():
    good = {"image_id": 1001, "category_id": 1, "keypoints": [10.0, 20.0, 0.9] * 17, "score": 0.8}
    return {
        "not JSON": ("[{'image_id': 1001}]", r"predictions file is not JSON \(Expecting"),
        "an object": (json.dumps({"annotations": []}), r"is a JSON list of .* it holds an object with keys"),
        "empty": ("[]", r"holds no prediction \(an empty list\)"),
        "no score": (json.dumps([good, _without(good, "score")]), r"prediction 1 has no score"),
        "34 values": (json.dumps([dict(good, keypoints=[1.0] * 34)]), r"prediction 0 has keypoints of 34 values"),
        "a string value": (json.dumps([dict(good, keypoints=["1"] + [1.0] * 50)]), r"not a finite number"),
        "NaN score": (json.dumps([dict(good, score=float("nan"))]), r"has score nan, not a finite number"),
        "another category": (json.dumps([dict(good, category_id=2)]), r"category_id 2, not the .* category 1"),
        "absent images": (json.dumps([good, dict(good, image_id=999), dict(good, image_id=998)]),
                          r"2 image id\(s\) of the predictions are not in the ground truth .*: 998, 999$"),
    }


@pytest.mark.parametrize("case", list(bad_predictions()))
def test_bad_predictions_are_refused_by_name(tmp_path, ground_truth_file, case):
    content, message = bad_predictions()[case]
    preds = tmp_path / "bad_preds.json"
    preds.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        coco.evaluate_coco_files(ground_truth_file, preds)
    assert str(error.value).startswith(f"{preds}: ")


# --- (e) the CLI --------------------------------------------------------------------------------------------

def _run_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "kpt_tf.evaluate", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_prints_the_table_and_writes_the_json(tmp_path, ground_truth_file):
    preds = write(tmp_path / "preds.json", jittered_predictions(json.loads(ground_truth_file.read_text())))
    out = tmp_path / "out" / "coco.json"
    run = _run_cli("--coco_gt", ground_truth_file, "--coco_preds", preds, "--json", out)
    assert run.returncode == 0, run.stderr
    assert f"predictions: {preds}" in run.stdout and "OKS keypoint AP / AR" in run.stdout
    assert "loading annotations" not in run.stdout and "Average Precision" not in run.stdout  # pycocotools' own
    written = json.loads(out.read_text())
    assert written == coco.evaluate_coco_files(ground_truth_file, preds)
    assert f"AP    OKS 0.50:0.95, all areas   {written['AP']:.3f}" in run.stdout


def test_cli_refuses_a_bad_file_and_mixed_modes(tmp_path, ground_truth_file):
    preds = write(tmp_path / "preds.json", [{"image_id": 999, "category_id": 1, "keypoints": [1.0] * 51,
                                             "score": 1.0}])
    run = _run_cli("--coco_gt", ground_truth_file, "--coco_preds", preds, "--json", tmp_path / "out.json")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"{preds}: 1 image id(s) of the predictions are not in the ground truth" in run.stderr
    assert not (tmp_path / "out.json").exists()
    run = _run_cli("--coco_gt", ground_truth_file, "--coco_preds", preds, "--gt", "gt.mat")
    assert run.returncode == 2 and "cannot be combined with --gt" in run.stderr and "Traceback" not in run.stderr

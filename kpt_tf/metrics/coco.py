"""COCO keypoint evaluation: OKS AP / AR computed by pycocotools' COCOeval (the reference implementation; nothing of
the metric is re-implemented here), and the keypoint-results JSON that top-down predictions are written as.

    evaluate_coco_files(gt_json, preds_json)  -> {"AP", "AP50", "AP75", "APm", "APl", "AR", ..., "ARl", counts}
    format_table(result)                       -> the table the CLI prints
    write_coco_results(path, image_ids, keypoints, scores, box_scores)   HRNet's rescoring and OKS-NMS, then the JSON
    read_detections(detections_json, gt_json)  -> a detector's person boxes per image (the top-down protocol)

Both files are read with `json` only (no pickle, no code from the file), and checked before pycocotools sees them:
its own failures on a bad file are bare asserts and KeyErrors that name neither the file nor the problem.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

# COCOeval.stats in its order for iouType "keypoints" (its summarize(): up to 20 people per image; medium is
# 32^2..96^2 px of annotated area, large above). pycocotools gives -1 where no ground-truth person is in the range.
STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
STAT_MEANINGS = {
    "AP": "OKS 0.50:0.95, all areas", "AP50": "OKS 0.50, all areas", "AP75": "OKS 0.75, all areas",
    "APm": "OKS 0.50:0.95, medium", "APl": "OKS 0.50:0.95, large",
    "AR": "OKS 0.50:0.95, all areas", "AR50": "OKS 0.50, all areas", "AR75": "OKS 0.75, all areas",
    "ARm": "OKS 0.50:0.95, medium", "ARl": "OKS 0.50:0.95, large",
}

PERSON_CATEGORY_ID = 1          # COCO's person category, the one its keypoint files annotate
# The top-down protocol's test settings as HRNet ships them (experiments/coco/hrnet/*.yaml, TEST.IN_VIS_THRE 0.2 and
# TEST.OKS_THRE 0.9) and mmpose's CocoMetric defaults (keypoint_score_thr 0.2, nms_thr 0.9).
KEYPOINT_SCORE_THRESHOLD = 0.2
OKS_NMS_THRESHOLD = 0.9

PREDICTION_KEYS = ("image_id", "category_id", "keypoints", "score")
GROUND_TRUTH_ANNOTATION_KEYS = ("id", "image_id", "category_id", "keypoints", "num_keypoints", "area", "bbox",
                                "iscrowd")


def coco_oks_sigmas() -> np.ndarray:
    """COCO's 17 per-keypoint OKS sigmas: the coco17 layout's (kpt_tf/layouts/coco17.json; its test checks them
    equal to pycocotools' own `Params(iouType="keypoints").kpt_oks_sigmas`)."""
    from kpt_tf.layouts import layout

    return np.asarray(layout("coco17").oks_sigmas, dtype=np.float64)


# --- evaluation of two files ----------------------------------------------------------------------------------

def evaluate_coco_files(gt_json, preds_json, pycocotools_output=None) -> dict:
    """OKS AP / AR of a COCO keypoint-results file against a COCO keypoint ground truth, by pycocotools' COCOeval.

    -> {STAT_NAMES: floats as COCOeval.stats gives them, "images", "people" (scored ground-truth people),
    "people_ignored" (crowd regions and people without a labelled keypoint, which COCOeval ignores),
    "predictions"}. ValueError naming the file on a bad one. pycocotools prints as it works: its text goes to
    `pycocotools_output` (a text stream, e.g. sys.stdout) or is discarded."""
    ground_truth = read_json(gt_json, "ground truth")
    category_id = check_ground_truth(ground_truth, gt_json)
    predictions = read_json(preds_json, "predictions")
    image_ids = {image["id"] for image in ground_truth["images"]}
    check_predictions(predictions, preds_json, image_ids, category_id, gt_json)
    counts = _counts(ground_truth, predictions, category_id)

    with contextlib.redirect_stdout(pycocotools_output or io.StringIO()):
        coco_gt = COCO()                 # built from the checked dict: the file is not parsed a second time
        coco_gt.dataset = ground_truth
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(predictions)
        coco_eval = COCOeval(coco_gt, coco_dt, "keypoints")
        coco_eval.params.catIds = [category_id]   # a ground truth may hold other categories, without keypoints
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    result = {name: float(value) for name, value in zip(STAT_NAMES, coco_eval.stats, strict=True)}
    result.update(counts)
    return result


def image_ids_by_file_name(gt_json) -> dict[str, int]:
    """{file_name: image id} of a COCO ground truth: how records (which name their source image) find the ids a
    results file needs."""
    ground_truth = read_json(gt_json, "ground truth")
    check_ground_truth(ground_truth, gt_json)
    unnamed = [image["id"] for image in ground_truth["images"] if not isinstance(image.get("file_name"), str)]
    if unnamed:
        raise ValueError(f"{gt_json}: images without a file_name (e.g. id {unnamed[0]}): records cannot be matched")
    return {image["file_name"]: image["id"] for image in ground_truth["images"]}


def read_json(path, what: str):
    """The JSON value of a file (json only: nothing in the file is ever run). ValueError naming it otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            return json.load(file)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: the {what} file is not JSON ({err.msg} at line {err.lineno}, "
                         f"column {err.colno})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: the {what} file is not JSON (not UTF-8 text)") from None


def check_ground_truth(ground_truth, path) -> int:
    """The id of the keypoint category of a COCO ground truth (person_keypoints_*.json); ValueError otherwise."""
    if not isinstance(ground_truth, dict):
        hint = " (a results file given as the ground truth?)" if isinstance(ground_truth, list) else ""
        raise ValueError(f"{path}: not a COCO ground truth (a JSON object with images, annotations and categories); "
                         f"it holds a {type(ground_truth).__name__}{hint}")
    if not isinstance(ground_truth.get("annotations"), list):
        raise ValueError(f"{path}: no 'annotations' list: not a COCO keypoint ground truth (an image-info file, "
                         "like test-dev's, has no public annotations)")
    images = ground_truth.get("images")
    if not isinstance(images, list) or not all(isinstance(image, dict) and "id" in image for image in images):
        raise ValueError(f"{path}: no 'images' list of objects with an 'id'")
    categories = [c for c in ground_truth.get("categories") or [] if isinstance(c, dict) and c.get("keypoints")]
    if len(categories) != 1:
        raise ValueError(f"{path}: {len(categories)} categories list keypoints; a COCO keypoint ground truth has one, "
                         "the person category with its 17 keypoint names (an instances_*.json has none)")
    category = categories[0]
    if len(category["keypoints"]) != len(coco_oks_sigmas()):
        raise ValueError(f"{path}: category {category.get('name', category.get('id'))!r} lists "
                         f"{len(category['keypoints'])} keypoints; COCO's OKS sigmas are for 17")
    for position, annotation in enumerate(ground_truth["annotations"]):
        if not isinstance(annotation, dict) or annotation.get("category_id") != category["id"]:
            continue
        missing = [key for key in GROUND_TRUTH_ANNOTATION_KEYS if key not in annotation]
        values = annotation.get("keypoints")
        if missing or not isinstance(values, list) or len(values) != 3 * len(category["keypoints"]):
            problem = f"has no {', '.join(missing)}" if missing else "does not hold 51 keypoint values (x, y, v)"
            raise ValueError(f"{path}: annotation {position} (id {annotation.get('id')}) {problem}")
    return category["id"]


def check_predictions(predictions, path, image_ids: set, category_id: int, gt_path) -> None:
    """ValueError naming `path` unless it is a non-empty COCO keypoint-results list on the ground truth's images."""
    expected = (f"a COCO keypoint-results file is a JSON list of {{image_id, category_id, keypoints "
                f"({3 * len(coco_oks_sigmas())} numbers: x, y, score per joint), score}}")
    if not isinstance(predictions, list):
        if isinstance(predictions, dict):
            found = f"an object with keys {sorted(predictions)[:6]} (a ground truth given as the predictions?)"
        else:
            found = f"a {type(predictions).__name__}"
        raise ValueError(f"{path}: {expected}; it holds {found}")
    if not predictions:
        raise ValueError(f"{path}: holds no prediction (an empty list); pycocotools cannot score it")
    for position, prediction in enumerate(predictions):
        problem = _prediction_problem(prediction, category_id)
        if problem:
            raise ValueError(f"{path}: prediction {position} {problem}; {expected}")
    absent = sorted({p["image_id"] for p in predictions} - image_ids, key=repr)
    if absent:
        shown = ", ".join(repr(i) for i in absent[:10]) + (", ..." if len(absent) > 10 else "")
        raise ValueError(f"{path}: {len(absent)} image id(s) of the predictions are not in the ground truth "
                         f"{gt_path}: {shown}")


def _prediction_problem(prediction, category_id: int) -> str | None:
    if not isinstance(prediction, dict):
        return f"is a {type(prediction).__name__}, not an object"
    missing = [key for key in PREDICTION_KEYS if key not in prediction]
    if missing:
        return f"has no {', '.join(missing)}"
    if type(prediction["image_id"]) not in (int, str):
        return f"has image_id {prediction['image_id']!r}, not a COCO image id"
    values = prediction["keypoints"]
    if not isinstance(values, list) or len(values) != 3 * len(coco_oks_sigmas()):
        count = len(values) if isinstance(values, list) else type(values).__name__
        return f"has keypoints of {count} values"
    if not all(_is_finite_number(v) for v in values):
        return "has a keypoint value that is not a finite number"
    if not _is_finite_number(prediction["score"]):
        return f"has score {prediction['score']!r}, not a finite number"
    if prediction["category_id"] != category_id:
        return f"has category_id {prediction['category_id']!r}, not the ground truth's keypoint category {category_id}"
    return None


def _is_finite_number(value) -> bool:
    # type(), not isinstance(): a JSON true / false is a bool, which isinstance counts as an int.
    return type(value) is int or (type(value) is float and math.isfinite(value))


def _counts(ground_truth: dict, predictions: list, category_id: int) -> dict:
    people = [a for a in ground_truth["annotations"] if isinstance(a, dict) and a.get("category_id") == category_id]
    # COCOeval's _prepare ignores crowd regions and, for keypoints, every annotation with num_keypoints 0.
    scored = sum(1 for a in people if not a["iscrowd"] and a["num_keypoints"] > 0)
    return {"images": len(ground_truth["images"]), "people": scored, "people_ignored": len(people) - scored,
            "predictions": len(predictions)}


def format_table(result: dict, title: str = "") -> str:
    """The figures of `evaluate_coco_files`, one line per metric."""
    lines = [title] if title else []
    lines.append(f"{result['images']} images: {result['people']} people scored, {result['people_ignored']} ignored "
                 f"(crowd regions, people without a labelled keypoint); {result['predictions']} predictions")
    lines.append("OKS keypoint AP / AR (pycocotools COCOeval, up to 20 people per image)")
    for name in STAT_NAMES:
        value = result[name]
        shown = f"{value:.3f}" if value >= 0 else "  -    (no ground-truth person of this size; pycocotools: -1)"
        lines.append(f"  {name:<5} {STAT_MEANINGS[name]:<26} {shown}")
    lines.append("  (medium: 32^2 to 96^2 pixels of annotated area; large: above)")
    return "\n".join(lines)


# --- a detector's person boxes ----------------------------------------------------------------------------------

DETECTION_KEYS = ("image_id", "category_id", "bbox", "score")


def read_detections(path, gt, score_threshold: float = 0.0) -> dict:
    """{image_id: (boxes [n, 4] x1, y1, x2, y2 in image pixels, scores [n])} of a COCO detection-results file, the
    person boxes of the top-down protocol, read as HRNet's COCODataset._load_coco_person_detection_results reads
    them (lib/dataset/coco.py): only the keypoint category, score >= `score_threshold` (its TEST.IMAGE_THRE, 0.0 in
    its COCO configs), the box [x, y, w, h] taken as is (x2 = x + w: HRNet's `_box2cs` centres it at x + w / 2,
    unclipped). `gt`: the ground-truth file. ValueError naming `path`: not a list of {image_id, category_id, bbox,
    score}, or an image id the ground truth lacks. Boxes with w or h <= 0 cannot be cropped: dropped, counted on
    stderr."""
    ground_truth = read_json(gt, "ground truth")
    category_id = check_ground_truth(ground_truth, gt)
    detections = read_json(path, "detections")
    expected = "a COCO detection-results file is a JSON list of {image_id, category_id, bbox [x, y, w, h], score}"
    if not isinstance(detections, list):
        found = f"an object with keys {sorted(detections)[:6]}" if isinstance(detections, dict) else \
            f"a {type(detections).__name__}"
        raise ValueError(f"{path}: {expected}; it holds {found}")
    rows: dict = {}
    empty = 0
    for position, detection in enumerate(detections):
        problem = _detection_problem(detection)
        if problem:
            raise ValueError(f"{path}: detection {position} {problem}; {expected}")
        if detection["category_id"] != category_id or detection["score"] < score_threshold:
            continue
        x, y, w, h = (float(v) for v in detection["bbox"])
        if w <= 0 or h <= 0:
            empty += 1
            continue
        rows.setdefault(detection["image_id"], []).append((x, y, x + w, y + h, float(detection["score"])))
    absent = sorted({d["image_id"] for d in detections} - {image["id"] for image in ground_truth["images"]})
    if absent:
        shown = ", ".join(str(i) for i in absent[:10]) + (", ..." if len(absent) > 10 else "")
        raise ValueError(f"{path}: {len(absent)} image id(s) of the detections are not in the ground truth {gt}: "
                         f"{shown}")
    if empty:
        print(f"{path}: {empty} person box(es) with width or height <= 0 dropped (nothing to crop)", file=sys.stderr)
    table = {image_id: np.asarray(people, dtype=np.float64) for image_id, people in rows.items()}
    return {image_id: (people[:, :4], people[:, 4]) for image_id, people in table.items()}


def _detection_problem(detection) -> str | None:
    if not isinstance(detection, dict):
        return f"is a {type(detection).__name__}, not an object"
    missing = [key for key in DETECTION_KEYS if key not in detection]
    if missing:
        return f"has no {', '.join(missing)}"
    if type(detection["image_id"]) is not int:
        return f"has image_id {detection['image_id']!r}, not a COCO image id (an integer)"
    bbox = detection["bbox"]
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_finite_number(v) for v in bbox):
        return f"has bbox {str(bbox)[:60]}, not 4 finite numbers [x, y, w, h]"
    if not _is_finite_number(detection["score"]):
        return f"has score {detection['score']!r}, not a finite number"
    return None


# --- writing predictions --------------------------------------------------------------------------------------

def write_coco_results(path, image_ids, keypoints, scores, box_scores=None, areas=None,
                       category_id: int = PERSON_CATEGORY_ID) -> int:
    """Write top-down predictions as a COCO keypoint-results JSON, rescored and OKS-NMS'd per image as HRNet does.

    image_ids (N,) COCO image ids; keypoints (N, 17, 2) in original-image pixels; scores (N, 17) per joint;
    box_scores (N,) the detector's person scores (None: ground-truth boxes, score 1 as in HRNet's JointsDataset);
    areas (N,) person areas for OKS-NMS (HRNet passes its padded crop box's; None: the keypoints' extent, as
    mmpose's CocoMetric does without them). Each person's entry holds [x, y, joint score] per joint (HRNet's
    `_coco_keypoint_results_one_category_kernel` and mmpose's `results2json` both put the score in the visibility
    slot) and its instance score `rescore`. -> the number of people written (after NMS)."""
    image_ids, keypoints, scores, box_scores, areas = _checked_people(image_ids, keypoints, scores, box_scores, areas)
    instance_scores = rescore(scores, box_scores)
    sigmas = coco_oks_sigmas()
    kept = []
    for image_id in np.unique(image_ids):
        people = np.flatnonzero(image_ids == image_id)
        kept.extend(people[oks_nms(keypoints[people], instance_scores[people], areas[people], sigmas)])
    with_scores = np.concatenate([keypoints, scores[..., None]], axis=-1).reshape(len(keypoints), -1)
    results = [{"image_id": int(image_ids[i]), "category_id": int(category_id),
                "keypoints": [float(v) for v in with_scores[i]], "score": float(instance_scores[i])} for i in kept]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.partial")
    try:
        staged.write_text(json.dumps(results, allow_nan=False) + "\n")
        os.replace(staged, path)        # a previous file at `path` is replaced only by a complete one
    finally:
        staged.unlink(missing_ok=True)
    return len(results)


def _checked_people(image_ids, keypoints, scores, box_scores, areas):
    keypoints = np.asarray(keypoints, dtype=np.float64)
    joints = len(coco_oks_sigmas())
    if keypoints.ndim != 3 or keypoints.shape[1:] != (joints, 2) or len(keypoints) == 0:
        raise ValueError(f"keypoints of shape {keypoints.shape}: expected (people > 0, {joints}, 2)")
    count = len(keypoints)
    scores = np.asarray(scores, dtype=np.float64)
    raw_ids = np.asarray(image_ids)
    image_ids = raw_ids.astype(np.int64)
    box_scores = np.ones(count) if box_scores is None else np.asarray(box_scores, dtype=np.float64)
    if areas is None:   # mmpose's CocoMetric without areas: the keypoints' bounding extent
        areas = np.ptp(keypoints[..., 0], axis=1) * np.ptp(keypoints[..., 1], axis=1)
    areas = np.asarray(areas, dtype=np.float64)
    for name, value, shape in (("scores", scores, (count, joints)), ("image_ids", raw_ids, (count,)),
                               ("box_scores", box_scores, (count,)), ("areas", areas, (count,))):
        if value.shape != shape:
            raise ValueError(f"{name} of shape {value.shape}: expected {shape} for {count} people")
    if not np.array_equal(image_ids, raw_ids):
        raise ValueError("image_ids must be integers (COCO image ids)")
    for name, value in (("keypoints", keypoints), ("scores", scores), ("box_scores", box_scores), ("areas", areas)):
        if not np.isfinite(value).all():
            raise ValueError(f"{name} hold a value that is not finite (NaN or inf)")
    return image_ids, keypoints, scores, box_scores, areas


def rescore(keypoint_scores, box_scores, threshold: float = KEYPOINT_SCORE_THRESHOLD) -> np.ndarray:
    """Instance scores of the top-down protocol: box score x the mean of the joint scores above `threshold` (0
    when none is), as HRNet's COCODataset.evaluate ("rescoring", in_vis_thre) and mmpose's CocoMetric
    (score_mode "bbox_keypoint") compute it."""
    keypoint_scores = np.asarray(keypoint_scores, dtype=np.float64)
    confident = keypoint_scores > threshold
    counted = confident.sum(axis=1)
    mean = np.where(counted > 0, (keypoint_scores * confident).sum(axis=1) / np.maximum(counted, 1), 0.0)
    return np.asarray(box_scores, dtype=np.float64) * mean


def oks_nms(keypoints, scores, areas, sigmas, threshold: float = OKS_NMS_THRESHOLD) -> np.ndarray:
    """Indices of the people kept by greedy OKS non-maximum suppression, highest score first.

    Follows HRNet's lib/nms/nms.py `oks_nms` / `oks_iou` (the same in mmpose's evaluation/functional/nms.py) as
    its COCO evaluation calls it, without a visibility threshold: the OKS of two people is
    mean_j exp(-d_j^2 / (2 * mean area * (2 sigma_j)^2)); a person whose OKS with a kept, higher-scored one
    exceeds `threshold` is dropped. Vectorised: the pairwise OKS matrix, then one pass in score order."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    squared_distances = ((keypoints[:, None] - keypoints[None]) ** 2).sum(axis=-1)           # (N, N, J)
    mean_areas = (areas[:, None] + areas[None]) / 2 + np.spacing(1)                            # (N, N)
    variances = (2 * np.asarray(sigmas, dtype=np.float64)) ** 2                                 # (J,)
    oks = np.exp(-squared_distances / variances / mean_areas[..., None] / 2).mean(axis=-1)
    kept = []
    suppressed = np.zeros(len(keypoints), dtype=bool)
    for person in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        if not suppressed[person]:
            kept.append(person)
            suppressed |= oks[person] > threshold
    return np.asarray(kept, dtype=np.int64)

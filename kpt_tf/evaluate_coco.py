"""COCO evaluation of a trained model: OKS AP by pycocotools (kpt_tf.metrics.coco) in the top-down protocol, on the
ground-truth boxes of COCO records (`evaluate_coco_model`, `score_coco_predictions`) and on a detector's person
boxes read from a directory of images (`evaluate_coco_detections`, as HRNet runs it). The command line is
`python -m kpt_tf.evaluate` (its COCO modes, documented there), which calls these; MPII's PCKh lives in
kpt_tf.evaluate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kpt_tf.evaluate_common import load_model_for_eval


def evaluate_coco_model(model_path, data_dir, coco_gt, split: str = "val", results_json=None, config=None,
                        flip_test: bool = True, flip_shift: bool = False, batch_size: int = 16) -> dict:
    """OKS AP of a trained model on COCO records (the top-down protocol on ground-truth boxes): every record's crop
    predicted, the keypoints mapped to image pixels, written as a COCO keypoint-results JSON (HRNet's instance
    score with box score 1, OKS-NMS per image with each crop's box area) and scored by pycocotools against
    `coco_gt`, the annotation file the records were converted from. `results_json`: keep that file there (else it
    is written to a scratch directory and removed). -> evaluate_coco_files' figures plus `table` and `results`."""
    from kpt_tf.data import pipeline
    from kpt_tf.inference import predict_dataset

    predict, codec, subset = load_model_for_eval(model_path, config, flip_test, flip_shift)
    if subset.layout.oks_sigmas is None or len(subset) != len(subset.layout.joints):
        raise ValueError(f"{model_path}: OKS AP scores all {len(subset.layout.joints)} joints of a layout with OKS "
                         f"sigmas; this model predicts {subset.qualified_name} ({len(subset)} joints)")
    ds = pipeline.make_dataset(data_dir, split, subset, pipeline.StreamOptions(
        batch_size=batch_size, training=False, input_size=codec.input_size, with_meta=True))
    preds = predict_dataset(predict, ds, codec)
    return score_coco_predictions(preds, coco_gt, results_json,
                                  title=f"model: {model_path}\ndata: {data_dir} ({split})")


def score_coco_predictions(preds, coco_gt, results_json=None, title: str = "") -> dict:
    """Predictions on COCO records (`predict_dataset`) -> a COCO keypoint-results JSON (HRNet's instance score with
    box score 1, OKS-NMS per image with each crop's box area) scored by pycocotools against `coco_gt`."""
    import tempfile

    from kpt_tf.metrics import coco

    image_ids = coco.image_ids_by_file_name(coco_gt)
    unknown = sorted(set(preds.image_names) - set(image_ids))
    if unknown:
        raise ValueError(f"{len(unknown)} record image(s) are not in {coco_gt} (e.g. {unknown[0]}); give the "
                         "annotation file these records were converted from")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(results_json) if results_json else Path(scratch) / "results.json"
        written = coco.write_coco_results(path, [image_ids[n] for n in preds.image_names], preds.joints,
                                          preds.scores, areas=preds.box_sides ** 2)
        result = coco.evaluate_coco_files(coco_gt, path)
    result["table"] = coco.format_table(result, title=f"{title}\n{len(preds.joints)} people on ground-truth boxes, "
                                                      f"{written} after OKS-NMS".lstrip())
    result["results"] = str(results_json) if results_json else None
    return result


def evaluate_coco_detections(model, coco_gt, coco_dets, images_dir, score_threshold: float = 0.0,
                             results_json=None, flip_test: bool = True, batch_size: int = 16,
                             progress: bool = True) -> dict:
    """OKS AP of a model on a detector's person boxes (the top-down protocol as HRNet runs it: its
    lib/dataset/coco.py reads the boxes, `evaluate` rescores box score x mean joint score and OKS-NMSes).

    `model`: a model path (any kind kpt_tf.predict.Predictor loads) or a loaded Predictor. `coco_dets`: a COCO
    detection-results JSON (`coco.read_detections`, boxes with score >= `score_threshold`); every ground-truth image
    is read from `images_dir` by its file_name and its boxes cropped as the records crop a ground-truth box (longer
    side x 1.25). Images of the ground truth missing from `images_dir`: all missing is refused; some missing are
    skipped, counted in "images_missing", and the AP is over the present images only (their ground truth alone is
    scored). -> evaluate_coco_files' figures plus "detections", "images_missing", `table` and `results`."""
    import tempfile

    from kpt_tf.metrics import coco
    from kpt_tf.predict import Predictor

    detections = coco.read_detections(coco_dets, coco_gt, score_threshold)
    ground_truth = coco.read_json(coco_gt, "ground truth")
    present, missing = _images_in_dir(ground_truth, coco_gt, images_dir)
    predictor = model if isinstance(model, Predictor) else Predictor.load(model, flip_test=flip_test,
                                                                           batch_size=batch_size)
    subset = predictor.joints
    if subset.layout.oks_sigmas is None or len(subset) != len(subset.layout.joints):
        raise ValueError(f"{predictor.description}: OKS AP scores all {len(subset.layout.joints)} joints of a "
                         f"layout with OKS sigmas; this model predicts {subset.qualified_name} ({len(subset)} joints)")
    people = _predict_on_detections(predictor, present, detections, progress)
    if not len(people["image_ids"]):
        raise ValueError(f"{coco_dets}: no person box with score >= {score_threshold:g} on the "
                         f"{len(present)} images present in {images_dir}: nothing to score")
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(results_json) if results_json else Path(scratch) / "results.json"
        written = coco.write_coco_results(path, people["image_ids"], people["keypoints"], people["scores"],
                                          box_scores=people["box_scores"], areas=people["areas"])
        scored_gt = coco_gt
        if missing:         # COCOeval scores every image of its ground truth: keep only the present ones
            scored_gt = Path(scratch) / "ground_truth_present.json"
            scored_gt.write_text(json.dumps({**ground_truth, "images": [i for i in ground_truth["images"] if
                                                                          i["id"] in present],
                                             "annotations": [a for a in ground_truth["annotations"] if
                                                             a.get("image_id") in present]}))
        result = coco.evaluate_coco_files(scored_gt, path)
    result.update(detections=len(people["image_ids"]), images_missing=len(missing))
    note = (f"; {len(missing)} ground-truth images missing from {images_dir}: AP over the {len(present)} present "
            "ones only" if missing else "")
    title = (f"model: {predictor.description}\ndetections: {coco_dets} (score >= {score_threshold:g})\n"
             f"{len(people['image_ids'])} people on detector boxes, {written} after OKS-NMS{note}")
    result["table"] = coco.format_table(result, title=title)
    result["results"] = str(results_json) if results_json else None
    return result


def _images_in_dir(ground_truth: dict, coco_gt, images_dir) -> tuple[dict, list]:
    """({image_id: path} of the ground truth's images found in `images_dir`, [ids of those missing]). ValueError
    when none is there (a wrong directory) or an image has no file_name."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise ValueError(f"--images_dir {images_dir}: not a directory")
    present, missing = {}, []
    for image in ground_truth["images"]:
        if not isinstance(image.get("file_name"), str):
            raise ValueError(f"{coco_gt}: image id {image['id']} has no file_name: its file cannot be found")
        path = images_dir / image["file_name"]
        if path.is_file():
            present[image["id"]] = path
        else:
            missing.append(image["id"])
    if not present:
        raise ValueError(f"--images_dir {images_dir}: none of the {len(missing)} images of {coco_gt} is there "
                         f"(e.g. {ground_truth['images'][0]['file_name']})")
    if missing:
        print(f"kpt_tf.evaluate: warning: {len(missing)} of the {len(ground_truth['images'])} images of {coco_gt} "
              f"are missing from {images_dir} (e.g. id {missing[0]}): skipped; the AP is over the "
              f"{len(present)} present images only", file=sys.stderr)
    return present, missing


def _predict_on_detections(predictor, present: dict, detections: dict, progress: bool,
                           images_per_call: int = 8) -> dict:
    """Every present image's person boxes through `predictor` -> per person (all images concatenated) image_ids,
    keypoints (image px), scores, box_scores and areas: the padded crop box's, (200 x scale)^2, what HRNet passes
    to OKS-NMS (s[0] * s[1] * 200^2 in its function.validate)."""
    import numpy as np
    from tqdm import tqdm

    from kpt_tf import geometry
    from kpt_tf.predict import read_image

    columns = {k: [] for k in ("image_ids", "keypoints", "scores", "box_scores", "areas")}
    busy = [(i, p) for i, p in present.items() if i in detections]     # an image without boxes predicts nobody
    bar = tqdm(total=len(busy), desc="images", unit="image", disable=not progress, file=sys.stderr, mininterval=2.0)
    with bar:
        for start in range(0, len(busy), images_per_call):
            chunk = busy[start:start + images_per_call]
            images = []
            for _, path in chunk:
                rgb = read_image(path)
                if rgb is None:
                    raise ValueError(f"{path}: cannot be decoded as an image")
                images.append(rgb)
            found = predictor.predict_many(images, [detections[i][0] for i, _ in chunk],
                                           [detections[i][1] for i, _ in chunk])
            for (image_id, _), people in zip(chunk, found):
                for person in people:
                    _, scale = geometry.box_center_scale(person.box[None].astype(np.float64))
                    columns["image_ids"].append(image_id)
                    columns["keypoints"].append(person.keypoints)
                    columns["scores"].append(person.scores)
                    columns["box_scores"].append(person.box_score)
                    columns["areas"].append(float((geometry.PERSON_BOX_PIXELS * scale[0]) ** 2))
            bar.update(len(chunk))
    return {k: np.asarray(v) for k, v in columns.items()}

"""COCO person_keypoints_*.json -> one `PersonAnnotation` per person annotation, in file order.

The rules are the top-down trainers' (HRNet `lib/dataset/coco.py`, mmpose's `CocoDataset`), so that crops and
counts compare with theirs:
- Only the person category's annotations; each keeps its position among them (`dataset_index`) and in its image.
- The box is clipped to the image as HRNet does (x1 = max(0, x), x2 = min(width - 1, x1 + max(0, w - 1)), alike
  for y); a box that is empty afterwards, or an annotation with area <= 0, cannot be cropped.
- Crowd regions (`iscrowd` 1) and people with no labelled keypoint (`num_keypoints` 0) are not trained on: they
  become people with a skip reason, counted in the converter's manifest like any other skip.
- Visibility: COCO's v = 0 (not labelled), 1 (labelled, occluded), 2 (labelled, visible) -> annotated = v > 0,
  visible = v == 2. Coordinates are used as stored (HRNet and mmpose read them as 0-based pixel positions).

The file is read with `json` only: nothing in it can run.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from kpt_tf.layouts import layout
from kpt_tf.mpii.person import AnnotationError, PersonAnnotation

COCO_LAYOUT = "coco17"
PERSON_CATEGORY = "person"
# Skip reasons this reader gives (data_prep.crops.skip_reason reports them first).
CROWD = "crowd region (iscrowd 1)"
EMPTY_BOX = "box empty after clipping to the image (or area <= 0)"


def read_coco_annotations(path, split: str) -> list[PersonAnnotation]:
    """The person annotations of a COCO keypoint file as `split`'s people (COCO files are one split each)."""
    path = Path(path)
    content = _load(path)
    joints = layout(COCO_LAYOUT).joints
    category = _person_category(content, path, joints)
    images = _images(content, path)
    people, per_image = [], defaultdict(int)
    for annotation in content["annotations"]:
        if not isinstance(annotation, dict) or annotation.get("category_id") != category:
            continue
        people.append(_person(annotation, split, len(people), images, per_image, path, len(joints)))
    return people


def _load(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            content = json.load(f)
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AnnotationError(f"{path}: not a COCO keypoint file (not JSON: {e})") from None
    if not isinstance(content, dict) or not all(isinstance(content.get(k), list)
                                                for k in ("images", "annotations", "categories")):
        raise AnnotationError(f"{path}: not a COCO keypoint file (expected an object with the lists 'images', "
                              "'annotations' and 'categories')")
    return content


def _person_category(content: dict, path: Path, joints: tuple[str, ...]) -> int:
    persons = [c for c in content["categories"] if isinstance(c, dict) and c.get("name") == PERSON_CATEGORY]
    if len(persons) != 1:
        raise AnnotationError(f"{path}: expected one category named {PERSON_CATEGORY!r}, found {len(persons)}")
    names = tuple(persons[0].get("keypoints") or ())
    if names != joints:
        raise AnnotationError(f"{path}: the person category's keypoints {list(names)} are not COCO's 17 "
                              f"({', '.join(joints)})")
    return persons[0].get("id")


def _images(content: dict, path: Path) -> dict:
    """image id -> (file name, width, height, position in the file's image list)."""
    images = {}
    for position, image in enumerate(content["images"]):
        try:
            images[image["id"]] = (str(image["file_name"]), int(image["width"]), int(image["height"]), position)
        except (KeyError, TypeError, ValueError):
            raise AnnotationError(f"{path}: image entry {position} lacks id, file_name, width or height") from None
    return images


def _person(annotation: dict, split: str, dataset_index: int, images: dict, per_image: dict, path: Path,
            num_joints: int) -> PersonAnnotation:
    where = f"{path}: annotation {annotation.get('id', dataset_index)!r}"
    if annotation.get("image_id") not in images:
        raise AnnotationError(f"{where} names image {annotation.get('image_id')!r}, which the file does not list")
    file_name, width, height, position = images[annotation["image_id"]]
    try:
        keypoints = np.asarray(annotation["keypoints"], np.float64).reshape(num_joints, 3)
        x, y, w, h = (float(v) for v in annotation["bbox"])
        area = float(annotation.get("area", w * h))
    except (KeyError, TypeError, ValueError):
        raise AnnotationError(f"{where}: expected 'keypoints' ({3 * num_joints} numbers) and 'bbox' (4)") from None
    if not np.all(np.isfinite(keypoints)) or not all(np.isfinite((x, y, w, h))):
        raise AnnotationError(f"{where}: keypoints or bbox not finite")
    box = _clipped_box(x, y, w, h, width, height)
    labelled = keypoints[:, 2] > 0
    reason = CROWD if annotation.get("iscrowd") else (EMPTY_BOX if box is None or area <= 0 else None)
    person_index = per_image[file_name]
    per_image[file_name] += 1
    objpos, scale = (None, None) if box is None else ((box[:2] + box[2:]) / 2, float(max(box[2:] - box[:2])) / 200)
    return PersonAnnotation(
        split=split, dataset_index=dataset_index, image=file_name, person_index=person_index,
        image_index=position, objpos=objpos, scale=scale,
        joints=np.where(labelled[:, None], keypoints[:, :2], 0.0), annotated=labelled.astype(np.int64),
        visible=(keypoints[:, 2] == 2).astype(np.int64), box=box, source_skip=reason)


def _clipped_box(x: float, y: float, w: float, h: float, width: int, height: int) -> np.ndarray | None:
    """HRNet's clean box as (x1, y1, x2, y2), or None when nothing is left."""
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(width - 1.0, x1 + max(0.0, w - 1.0)), min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 < x1 or y2 < y1:
        return None
    return np.array([x1, y1, x2, y2], np.float64)

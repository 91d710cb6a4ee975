"""Person boxes for top-down pose estimation: where `kpt_tf.predict` gets the people it crops.

Three sources, each `rgb image -> (boxes [N, 4] x1, y1, x2, y2 in image pixels, scores [N])`:
- `DETECTORS["hog"]`: OpenCV's built-in HOG + linear SVM people detector (Dalal & Triggs), shipped inside
  opencv-python, no download at run time. Upright, mostly whole people of at least its 64 x 128 window; weak on
  sitting, partial or small people (BUILD_NOTES, "Prediction on photos and videos").
- `DETECTORS["none"]`: the whole image (a video frame) as one person (a photo already cropped to one person).
- `BoxesFile`: a COCO detection-results JSON (`[{"image_id", "bbox": [x, y, w, h], "score", "category_id"}]`,
  what HRNet and mmpose feed their top-down models), resolved to image files through a COCO `images` list or the
  numeric stem of the file name (COCO's own naming).
Every source's boxes go through `suppress`: a score threshold, then greedy non-maximum suppression on box IoU (the
step mmpose's top-down inferencer applies to detector boxes: `nms_thr` 0.3 by default).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np

DEFAULT_IOU_THRESHOLD = 0.3
PERSON_CATEGORY_ID = 1    # COCO's "person"


def suppress(boxes, scores, score_threshold: float = 0.0, iou_threshold: float = DEFAULT_IOU_THRESHOLD):
    """Boxes with score >= `score_threshold`, overlapping ones (IoU > `iou_threshold`) suppressed greedily by score;
    returned best first."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    keep = np.flatnonzero(scores >= score_threshold)
    boxes, scores = boxes[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    kept = []
    while len(order):
        best, rest = order[0], order[1:]
        kept.append(best)
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        overlap = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = overlap / np.maximum(areas[best] + areas[rest] - overlap, 1e-9)
        order = rest[iou <= iou_threshold]
    kept = np.asarray(kept, int)
    return boxes[kept].astype(np.float32), scores[kept].astype(np.float32)


class HOGPeopleDetector:
    """OpenCV's default HOG people detector. Images are scanned at most `max_side` pixels on their longer side
    (HOG's cost grows with the pixel count; people smaller than its 128-px window after that are missed)."""

    name = "hog"

    def __init__(self, max_side: int = 512, hit_threshold: float = 0.0):
        self.max_side = int(max_side)
        self.hit_threshold = float(hit_threshold)
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def __call__(self, rgb: np.ndarray):
        height, width = rgb.shape[:2]
        factor = min(1.0, self.max_side / max(height, width))
        image = rgb if factor == 1.0 else cv2.resize(rgb, (round(width * factor), round(height * factor)),
                                                     interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        rects, weights = self.hog.detectMultiScale(gray, hitThreshold=self.hit_threshold, winStride=(4, 4),
                                                   padding=(16, 16), scale=1.05)
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        rects = np.asarray(rects, np.float64) / factor
        boxes = np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2], rects[:, 1] + rects[:, 3]], 1)
        # HOG's window holds the person with a margin of about 1/8 of its height above and below: trim it, so the
        # box is the person's, as a detector trained on person boxes gives (the crop adds its own 1.25 padding).
        margin = (boxes[:, 3] - boxes[:, 1]) / 8
        boxes[:, 1] += margin
        boxes[:, 3] -= margin
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width - 1)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height - 1)
        return boxes.astype(np.float32), np.asarray(weights, np.float32).reshape(-1)


class WholeImage:
    """The whole image as one person box with score 1."""

    name = "none"

    def __call__(self, rgb: np.ndarray):
        height, width = rgb.shape[:2]
        return np.array([[0, 0, width - 1, height - 1]], np.float32), np.ones((1,), np.float32)


DETECTORS = {"hog": HOGPeopleDetector, "none": WholeImage}


def make_detector(name: str):
    if name not in DETECTORS:
        raise ValueError(f"--detector {name!r}: not one of {sorted(DETECTORS)}")
    return DETECTORS[name]()


class BoxesFile:
    """Person boxes read from a COCO detection-results JSON, looked up by image file.

    `coco_images`: a COCO JSON whose `images` list maps `id` to `file_name`; without it an image's id is the number
    its file stem spells (`000000397133.jpg` -> 397133). Entries with a `category_id` other than person are dropped
    (counted); an entry without `image_id` or with a malformed `bbox` refuses the file, naming the entry."""

    name = "boxes file"

    def __init__(self, path, coco_images=None):
        self.path = Path(path)
        entries = _read_json(self.path, "--boxes")
        if not isinstance(entries, list):
            raise ValueError(f"--boxes {self.path}: not a COCO detection-results file (a JSON list of "
                             '{"image_id", "bbox": [x, y, w, h], "score"}); got a JSON ' + type(entries).__name__)
        self.by_image: dict[object, list] = {}
        self.other_categories = 0
        for k, entry in enumerate(entries):
            where = f"--boxes {self.path}: entry {k}"
            if not isinstance(entry, dict) or "image_id" not in entry or "bbox" not in entry:
                raise ValueError(f"{where}: needs image_id and bbox [x, y, w, h] (COCO detection results), got "
                                 f"{str(entry)[:120]}")
            bbox = entry["bbox"]
            if (not isinstance(bbox, (list, tuple)) or len(bbox) != 4
                    or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in bbox)
                    or bbox[2] <= 0 or bbox[3] <= 0):
                raise ValueError(f"{where}: bbox must be 4 finite numbers [x, y, w, h] with w, h > 0, got {bbox}")
            if entry.get("category_id", PERSON_CATEGORY_ID) != PERSON_CATEGORY_ID:
                self.other_categories += 1
                continue
            score = entry.get("score", 1.0)
            if not isinstance(score, (int, float)) or not np.isfinite(score):
                raise ValueError(f"{where}: score must be a finite number, got {score!r}")
            x, y, w, h = (float(v) for v in bbox)
            self.by_image.setdefault(_image_key(entry["image_id"]), []).append((x, y, x + w, y + h, float(score)))
        self.id_of_file: dict[str, object] | None = None
        if coco_images:
            coco = _read_json(Path(coco_images), "--coco_images")
            images = coco.get("images") if isinstance(coco, dict) else None
            if not isinstance(images, list):
                raise ValueError(f"--coco_images {coco_images}: not a COCO JSON with an `images` list")
            self.id_of_file = {}
            for k, image in enumerate(images):
                if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
                    raise ValueError(f"--coco_images {coco_images}: images[{k}] needs id and file_name")
                self.id_of_file[Path(str(image["file_name"])).name] = _image_key(image["id"])

    def image_id(self, file_name: str):
        """The image id of a file (None when neither the COCO images list nor its stem gives one)."""
        name = Path(file_name).name
        if self.id_of_file is not None:
            return self.id_of_file.get(name)
        match = re.fullmatch(r"0*(\d+)", Path(name).stem)
        return int(match.group(1)) if match else None

    def check_covers(self, file_names) -> None:
        """Refuse a boxes file whose image ids match none of the inputs (a wrong file, or a missing --coco_images),
        and one naming images that are not among the inputs, naming an example."""
        ids = {self.image_id(f) for f in file_names}
        unknown = [i for i in self.by_image if i not in ids]
        if self.by_image and len(unknown) == len(self.by_image):
            raise ValueError(f"--boxes {self.path}: none of its {len(self.by_image)} image ids (e.g. {unknown[0]!r}) "
                             "is an input image; ids come from --coco_images or the numeric file stem")
        if unknown:
            raise ValueError(f"--boxes {self.path}: {len(unknown)} of its image ids name no input image (e.g. "
                             f"{unknown[0]!r}); give the images they belong to or a boxes file for these inputs")

    def boxes_for(self, file_name: str):
        rows = self.by_image.get(self.image_id(file_name), [])
        if not rows:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        rows = np.asarray(rows, np.float32)
        return rows[:, :4], rows[:, 4]


def _image_key(value):
    """COCO ids are ints; some tools write them as strings of digits: one key for both."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _read_json(path: Path, flag: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{flag} {path}: does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{flag} {path}: not JSON ({e})") from None

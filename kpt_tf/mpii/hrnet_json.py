"""HRNet's / mmpose's MPII annotation files: `train.json`, `valid.json`, `trainval.json`, `test.json`.

One record per person: `image` (file name), `center` and `scale` (MPII's objpos and scale), `joints` (16 x [x, y])
and `joints_vis` (16 flags); HRNet's `test.json` people need no joints (its loader never reads them there).
Conventions, established on the five people of mmpose's `tests/data/mpii/test_mpii.json` (= the first five of
HRNet's `valid.json`) against the same people in `mpii_annotations.json` and the stacked-hourglass `valid.h5`
(tests/kpt_tf/mpii/test_hrnet_json.py):
- `center` is the release's `objpos` as is: 1-based, not yet adjusted. HRNet's loader
  (`lib/dataset/mpii.py`) moves it down by 15 * scale, enlarges the scale by 1.25 and only then subtracts 1:
  the same crop as `kpt_tf.geometry.adjust_person_box` on the 0-based objpos. A centre of -1 means no objpos.
- `scale` is the release's scale to 6 decimals (`mpii_annotations.json` rounds it to 3).
- `joints` are 1-based pixels like every MPII file (HRNet subtracts 1 on loading); a joint that is not
  annotated is [-1, -1] with `joints_vis` 0.
- `joints_vis` is the *annotated* flag (HRNet's target weight), not visibility: the person of 051423444.jpg has
  `joints_vis` 1 at the right wrist and elbow, which `mpii_annotations.json` and `valid.h5` mark occluded. The
  file has no occlusion flag, so its people carry visible = annotated (a visible/occluded PCKh split of records
  converted from it means nothing; use mpii_annotations.json or the release for that).
- The split is not in the records: it comes from the file name (train.json, trainval.json -> train, valid.json
  -> val, test.json -> test) or is given (`read_annotations(..., split=)`, the converter's `--json_split`).
- There is no annorect index and no head box: `person_index` is the person's rank among the file's people of
  the same image (0-based, file order); validation head boxes come from `--val_gt` as for
  mpii_annotations.json (HRNet's valid.json lists the 2,958 people of `detections_our_format.mat` in order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from kpt_tf.joints import NUM_JOINTS
from kpt_tf.mpii.coords import from_one_based
from kpt_tf.mpii.person import (
    SPLITS,
    TEST_SPLIT,
    AnnotationError,
    PersonAnnotation,
    empty_joints,
    objpos_or_none,
    scale_or_none,
)

RECORD_KEYS = ("image", "center", "scale")
JOINT_KEYS = ("joints", "joints_vis")
# HRNet's file names -> split (HRNet trains its test-set model on trainval).
FILE_SPLITS = {"train": "train", "trainval": "train", "valid": "val", "val": "val", "test": TEST_SPLIT}


def is_hrnet_records(records: Sequence) -> bool:
    """True when the first record has HRNet's keys (and not mpii_annotations.json's `img_paths`)."""
    first = records[0] if len(records) else None
    return isinstance(first, dict) and all(k in first for k in RECORD_KEYS) and "img_paths" not in first


def split_from_file_name(path) -> str | None:
    """train.json / trainval.json -> 'train', valid.json -> 'val', test.json -> 'test' (also .json.gz);
    None for any other name."""
    name = Path(path).name.lower()
    for suffix in (".json.gz", ".json"):
        if name.endswith(suffix):
            return FILE_SPLITS.get(name[: -len(suffix)])
    return None


def people_from_hrnet_records(records: Sequence, source, split: str | None = None) -> list[PersonAnnotation]:
    """HRNet/mmpose records -> people (0-based pixels), file order; AnnotationError naming the record."""
    source = Path(source)
    split = split or split_from_file_name(source)
    if split is None:
        raise AnnotationError(f"{source}: an HRNet/mmpose json whose split cannot be told from its name (train, "
                              f"trainval, valid or test .json); give it (--json_split {'|'.join(SPLITS)})")
    if split not in SPLITS:
        raise AnnotationError(f"{source}: split {split!r}: expected one of {', '.join(SPLITS)}")
    people: list[PersonAnnotation] = []
    rank_in_image: dict[str, int] = {}
    for i, rec in enumerate(records):
        where = f"{source} record {i}"
        if not isinstance(rec, dict):
            raise AnnotationError(f"{where}: not an object (an HRNet/mmpose record has "
                                  f"{', '.join(RECORD_KEYS + JOINT_KEYS)})")
        if missing := [k for k in RECORD_KEYS if k not in rec]:
            raise AnnotationError(f"{where}: lacks {', '.join(missing)} (not an HRNet/mmpose record: it has "
                                  f"{', '.join(sorted(rec)[:6]) or 'no keys'})")
        image = rec["image"]
        if not isinstance(image, str) or not image:
            raise AnnotationError(f"{where}: image {image!r} is not a file name")
        where = f"{where} ({image})"
        objpos = _center(rec["center"], where)
        scale = scale_or_none(rec["scale"]) if _is_number(rec["scale"]) else None
        if scale is None:
            raise AnnotationError(f"{where}: scale {rec['scale']!r} is not a finite number")
        if split == TEST_SPLIT:
            joints, annotated, visible = empty_joints()   # HRNet never reads a test person's joints
        else:
            joints, annotated = _joints(rec, where)
            visible = annotated.copy()                     # the file has no occlusion flag (module doc)
        person_index = rank_in_image.get(image, 0)
        rank_in_image[image] = person_index + 1
        people.append(PersonAnnotation(
            split=split, dataset_index=len(people), image=image, person_index=person_index, image_index=None,
            objpos=objpos, scale=scale, joints=joints, annotated=annotated, visible=visible))
    return people


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _center(value, where: str) -> np.ndarray | None:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value)):
        raise AnnotationError(f"{where}: center {value!r} is not two numbers [x, y]")
    return objpos_or_none(value)       # -1 (HRNet's "no centre") -> None; 1-based -> 0-based


def _joints(rec: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    if missing := [k for k in JOINT_KEYS if k not in rec]:
        raise AnnotationError(f"{where}: lacks {', '.join(missing)} (only test.json people may)")
    try:
        xy = np.asarray(rec["joints"], np.float64)
        flags = np.asarray(rec["joints_vis"], np.float64)
    except (TypeError, ValueError) as e:
        raise AnnotationError(f"{where}: joints / joints_vis are not numbers ({e})") from e
    if xy.shape != (NUM_JOINTS, 2):
        raise AnnotationError(f"{where}: joints has shape {xy.shape}, expected ({NUM_JOINTS}, 2)")
    if flags.shape != (NUM_JOINTS,) or not np.isin(flags, (0, 1)).all():
        raise AnnotationError(f"{where}: joints_vis must be {NUM_JOINTS} flags of 0 or 1, got "
                              f"{np.asarray(rec['joints_vis']).tolist()}")
    annotated = flags.astype(np.int64)
    joints = np.where(annotated[:, None] == 1, from_one_based(xy), 0.0)
    return joints, annotated


__all__ = ["RECORD_KEYS", "JOINT_KEYS", "FILE_SPLITS", "is_hrnet_records", "split_from_file_name",
           "people_from_hrnet_records"]

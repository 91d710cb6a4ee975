"""MPII annotation files: one `PersonAnnotation` per person (0-based pixels), and the json writer.

Four sources are read (`read_annotations` picks by file name, and for json by the records' keys):
- the official release `mpii_human_pose_v1_u12_1.mat` (MATLAB struct `RELEASE`): the people of its training
  images, and the single-person rectangles of its test images (split 'test', no joints);
- the widely redistributed `mpii_annotations.json[.gz]` (one record per person, `isValidation` split);
- the generator's `annotations.json` (`data_prep.synth`): the same schema plus a `headbox` key, written by
  `write_json_annotations` in the real file's number style;
- HRNet's / mmpose's `train.json`, `valid.json`, `trainval.json`, `test.json` (`kpt_tf.mpii.hrnet_json`).

MPII files are 1-based; `kpt_tf.mpii.coords` holds the 1-based rule and the "not annotated = (0, 0)" rule of
joint_self, and every reader goes through it. There is one json reader: `load_json_records` (the file) and
`people_from_json_records` (its records -> people); `read_json_annotations` is both. Readers do not decide
usability: a person with a missing `objpos` or no annotated joint is still returned (with `objpos=None` etc.),
so that `dataset_index` counts every person of the split and the converter can report why it was skipped.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from kpt_tf.joints import NUM_JOINTS
from kpt_tf.mpii import hrnet_json
from kpt_tf.mpii.coords import from_one_based, parse_joint_self
from kpt_tf.mpii.evaluation_files import load_ground_truth
from kpt_tf.mpii.person import (
    SPLITS,
    TEST_SPLIT,
    AnnotationError,
    PersonAnnotation,
    empty_joints,
    objpos_or_none,
    scale_or_none,
)


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# JSON: mpii_annotations.json[.gz] and the generator's annotations.json
# --------------------------------------------------------------------------------------------------

def load_json_records(path, required_keys: Sequence[str] = ()) -> list:
    """The records of an mpii_annotations-style .json[.gz] as stored: a list, each record an object holding
    `required_keys` (AnnotationError otherwise)."""
    path = Path(path)
    try:
        with _open_text(path) as f:
            data = json.load(f)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AnnotationError(f"annotations file {path} is not readable JSON: {e}") from e
    if isinstance(data, dict) and isinstance(data.get("root"), list):  # some copies wrap the list
        data = data["root"]
    if not isinstance(data, list):
        raise AnnotationError(f"annotations file {path}: expected a list of person records, got "
                              f"{type(data).__name__}")
    for i, rec in enumerate(data if required_keys else ()):
        if not isinstance(rec, dict):
            raise AnnotationError(f"annotations file {path}: record {i} is not an object")
        if missing := [k for k in required_keys if k not in rec]:
            raise AnnotationError(f"annotations file {path}: record {i} lacks {', '.join(missing)}")
    return data


def people_from_json_records(records: Sequence, source="annotations") -> list[PersonAnnotation]:
    """Records of mpii_annotations.json (or of the generator's annotations.json) -> people, file order.

    Split: `isValidation` truthy -> 'val', else 'train'. A `headbox` key (generator output), given as
    [x1, y1, x2, y2] or [[x1, y1], [x2, y2]] in 1-based pixels, becomes the head box.
    """
    people: list[PersonAnnotation] = []
    split_counts = {s: 0 for s in SPLITS}
    for i, rec in enumerate(records):
        where = f"{source} record {i}"
        try:
            split = "val" if float(rec.get("isValidation", 0)) else "train"
            image = str(rec["img_paths"])
            rows = rec["joint_self"]
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise AnnotationError(f"{where}: not an mpii_annotations person record ({e!r})") from e
        try:
            joints, annotated, visible = parse_joint_self(rows)
        except (TypeError, ValueError) as e:
            raise AnnotationError(f"{where}: {e}") from e
        head_box = None
        if rec.get("headbox") is not None:
            box = np.asarray(rec["headbox"], np.float64).reshape(-1)
            if box.size != 4:
                raise AnnotationError(f"{where}: headbox has {box.size} values, expected 4")
            head_box = from_one_based(box)
        image_index = rec.get("annolist_index")
        people_index = rec.get("people_index")
        people.append(PersonAnnotation(
            split=split,
            dataset_index=split_counts[split],
            image=image,
            # people_index / annolist_index are MATLAB (1-based) indices into the release's arrays.
            person_index=int(people_index) - 1 if people_index is not None else 0,
            image_index=int(image_index) - 1 if image_index is not None else None,
            objpos=objpos_or_none(rec.get("objpos")),
            scale=scale_or_none(rec.get("scale_provided")),
            joints=joints, annotated=annotated.astype(np.int64), visible=visible.astype(np.int64),
            head_box=head_box))
        split_counts[split] += 1
    if bad_index := [p for p in people if p.person_index < 0]:
        raise AnnotationError(f"{source}: {len(bad_index)} records have people_index < 1 (it is 1-based)")
    return people


def read_json_annotations(path) -> list[PersonAnnotation]:
    """mpii_annotations.json[.gz] (or the generator's annotations.json) -> people, file order."""
    return people_from_json_records(load_json_records(path), Path(path))


def encode_json(value) -> str:
    """JSON in the real file's style: numbers as %.3f (ints only where the file has ints), no spaces."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}: {encode_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ",".join(encode_json(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        text = f"{float(value):.3f}"
        return "0.000" if text == "-0.000" else text
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"cannot encode {type(value).__name__} in annotations.json")


def write_json_annotations(path, records: Sequence[dict]) -> None:
    """Write person records as an mpii_annotations-style annotations.json (atomically, real file's style)."""
    path = Path(path)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text("[" + ",".join(encode_json(r) for r in records) + "]")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------------
# The official release .mat
# --------------------------------------------------------------------------------------------------

def _as_list(value) -> list:
    """A MATLAB struct array loaded with squeeze_me=True: one struct, an array of them, or [] -> list."""
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        return [] if value.size == 0 else list(value.reshape(-1))
    return [value]


def _field(struct, name):
    """struct.name, or None when the field is absent or an empty MATLAB array."""
    value = getattr(struct, name, None)
    if isinstance(value, np.ndarray) and value.size == 0:
        return None
    if isinstance(value, str) and value == "":
        return None
    return value


def _release_is_visible(value, where: str) -> int:
    """is_visible in the release is numeric, a char ('0'/'1') or empty. Empty -> 1: the release leaves it
    empty mostly for upper neck and head top, which every derived file (mpii_annotations.json) marks
    visible."""
    if value is None:
        return 1
    try:
        if isinstance(value, (str, bytes)):
            text = (value.decode() if isinstance(value, bytes) else value).strip()
            return 1 if text == "" else int(float(text) > 0)
        flat = np.asarray(value).reshape(-1)
        return 1 if flat.size == 0 else int(float(flat[0]) > 0)
    except (TypeError, ValueError) as e:
        raise AnnotationError(f"{where}: is_visible {value!r} is neither a number nor empty") from e


def _release_person(rect, where: str):
    joints, annotated, visible = empty_joints()
    annopoints = _field(rect, "annopoints")
    points = _as_list(_field(annopoints, "point")) if annopoints is not None else []
    for point in points:
        pid, x, y = _field(point, "id"), _field(point, "x"), _field(point, "y")
        if pid is None or x is None or y is None:
            continue
        pid = int(np.asarray(pid).reshape(-1)[0])
        if not 0 <= pid < NUM_JOINTS:
            raise AnnotationError(f"{where}: joint id {pid} outside 0..{NUM_JOINTS - 1}")
        xy = np.array([float(np.asarray(x).reshape(-1)[0]), float(np.asarray(y).reshape(-1)[0])])
        joints[pid] = from_one_based(xy)
        annotated[pid] = 1
        visible[pid] = _release_is_visible(_field(point, "is_visible"), where)
    objpos_struct = _field(rect, "objpos")
    objpos = None
    if objpos_struct is not None:
        ox, oy = _field(objpos_struct, "x"), _field(objpos_struct, "y")
        if ox is not None and oy is not None:
            objpos = objpos_or_none([float(np.asarray(ox).reshape(-1)[0]),
                                      float(np.asarray(oy).reshape(-1)[0])])
    box = [_field(rect, k) for k in ("x1", "y1", "x2", "y2")]
    head_box = None
    if all(v is not None for v in box):
        head_box = from_one_based([float(np.asarray(v).reshape(-1)[0]) for v in box])
    return objpos, scale_or_none(_field(rect, "scale")), joints, annotated, visible, head_box


def read_release_mat(path, val_people: set[tuple[int, int]] | None = None) -> list[PersonAnnotation]:
    """mpii_human_pose_v1_u12_1.mat -> its people, file order: the people of the training images
    (img_train == 1) and, split 'test', the single-person rectangles of the test images.

    Every annotation rectangle of a training image is a person (those without objpos/scale/joints are
    returned too, and the converter skips them with a reason). The release does not define the usual
    2,958-person validation split: without `val_people` every person goes to 'train'; with it, the people
    whose 0-based (image_index, person_index) is in the set go to 'val'.
    Test people are the rectangles `RELEASE.single_person{i}` lists for a test image (img_train == 0), in
    rectangle order: the people MPII's single-person evaluation scores (its toolkit's evaluatePCKh); they have
    objpos and scale but no joints. A release without `single_person` gives no test people.
    """
    release = load_release(path)
    images, img_train, single_person = release.annolist, release.img_train, release.single_person
    val_people = set(val_people or ())
    people: list[PersonAnnotation] = []
    split_counts = {s: 0 for s in SPLITS}
    seen_val = set()
    for image_index, (entry, is_train) in enumerate(zip(images, img_train)):
        is_train = int(is_train) == 1
        rects = _as_list(_field(entry, "annorect"))
        if is_train:
            chosen = range(len(rects))
        else:
            chosen = single_person_rects(single_person[image_index], len(rects), path, image_index)
            if not chosen:
                continue
        name = release_image_name(entry, path, image_index)
        for person_index in chosen:
            where = f"{path} annolist({image_index + 1}).annorect({person_index + 1})"
            objpos, scale, joints, annotated, visible, head_box = _release_person(rects[person_index], where)
            key = (image_index, person_index)
            if not is_train:
                split = TEST_SPLIT
                joints, annotated, visible = empty_joints()
            else:
                split = "val" if key in val_people else "train"
            if split == "val":
                seen_val.add(key)
            people.append(PersonAnnotation(
                split=split, dataset_index=split_counts[split], image=name,
                person_index=person_index, image_index=image_index, objpos=objpos, scale=scale,
                joints=joints, annotated=annotated, visible=visible, head_box=head_box))
            split_counts[split] += 1
    if missing := sorted(val_people - seen_val):
        first = ", ".join(f"({i + 1}, {p + 1})" for i, p in missing[:5])
        raise AnnotationError(f"{path}: {len(missing)} validation people of the val list are not people of "
                              f"training images in the release (1-based annolist, annorect: {first} ...)")
    return people


@dataclasses.dataclass
class Release:
    """The parts of mpii_human_pose_v1_u12_1.mat the readers use (scipy structs, squeeze_me=True)."""

    annolist: list            # one struct per image
    img_train: np.ndarray     # (images,) 1 = training image, 0 = test image
    single_person: list       # per image: the 1-based rectangle ids of its single people (empty: none)


def load_release(path) -> Release:
    """Read the release .mat (data only: scipy.io, no code runs); AnnotationError naming the file otherwise."""
    import scipy.io

    path = Path(path)
    try:
        mat = scipy.io.loadmat(str(path), struct_as_record=False, squeeze_me=True)
    except Exception as e:  # scipy raises several types (ValueError, TypeError, MatReadError...)
        raise AnnotationError(f"annotations file {path} is not a readable MATLAB file: {e}") from e
    release = mat.get("RELEASE")
    annolist = _field(release, "annolist") if release is not None else None
    img_train = _field(release, "img_train") if release is not None else None
    if annolist is None or img_train is None:
        raise AnnotationError(f"{path}: no RELEASE.annolist / RELEASE.img_train (is it the official "
                              "mpii_human_pose_v1_u12_1.mat?)")
    images = _as_list(annolist)
    img_train = np.asarray(img_train).reshape(-1)
    if len(images) != img_train.size:
        raise AnnotationError(f"{path}: {len(images)} annolist entries but {img_train.size} img_train flags")
    single_person = _field(release, "single_person")
    single_person = [None] * len(images) if single_person is None else _as_list(single_person)
    if len(single_person) != len(images):
        raise AnnotationError(f"{path}: {len(images)} annolist entries but {len(single_person)} single_person "
                              "entries")
    return Release(images, img_train, single_person)


def release_image_name(entry, path, image_index: int) -> str:
    image_struct = _field(entry, "image")
    name = _field(image_struct, "name") if image_struct is not None else None
    if name is None:
        raise AnnotationError(f"{path}: annolist({image_index + 1}).image.name is missing")
    return str(name)


def single_person_rects(entry, num_rects: int, path, image_index: int) -> list[int]:
    """single_person{i} (1-based rectangle ids, a number, an array or empty) -> sorted 0-based indices."""
    try:
        ids = sorted({int(v) for v in _as_list(entry)})
    except (TypeError, ValueError) as e:
        raise AnnotationError(f"{path}: single_person{{{image_index + 1}}} holds {entry!r}, not rectangle "
                              "ids") from e
    if bad := [i for i in ids if not 1 <= i <= num_rects]:
        raise AnnotationError(f"{path}: single_person{{{image_index + 1}}} names rectangle {bad[0]} but the "
                              f"image has {num_rects} (annolist({image_index + 1}).annorect)")
    return [i - 1 for i in ids]


def read_val_list(path) -> set[tuple[int, int]]:
    """The validation people for the release .mat, as 0-based (image_index, person_index) pairs.

    Either a text file with one `annolist_index people_index` pair per line (1-based, MATLAB indices, as
    in mpii_annotations.json; '#' starts a comment), or an mpii_annotations.json[.gz], whose isValidation
    people are taken (this gives the usual Tompson 2,958-person split).
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"--val_list {path} does not exist")
    if path.name.endswith((".json", ".json.gz")):
        pairs = set()
        for i, rec in enumerate(load_json_records(path)):
            try:
                if float(rec.get("isValidation", 0)):
                    pairs.add((int(rec["annolist_index"]) - 1, int(rec["people_index"]) - 1))
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise AnnotationError(f"--val_list {path} record {i}: needs annolist_index and "
                                      f"people_index ({e!r})") from e
        return pairs
    pairs = set()
    with _open_text(path) as f:
        for line_number, line in enumerate(f, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            fields = text.replace(",", " ").split()
            try:
                image_index, person_index = (int(v) for v in fields)
            except ValueError as e:
                raise AnnotationError(f"--val_list {path} line {line_number}: expected two 1-based integers "
                                      f"'annolist_index people_index', got {text!r}") from e
            if image_index < 1 or person_index < 1:
                raise AnnotationError(f"--val_list {path} line {line_number}: indices are 1-based, got {text!r}")
            pairs.add((image_index - 1, person_index - 1))
    return pairs


# --------------------------------------------------------------------------------------------------
# Dispatch and validation ground truth
# --------------------------------------------------------------------------------------------------

def read_annotations(path, val_list=None, split: str | None = None) -> list[PersonAnnotation]:
    """Read any accepted annotation file: .mat -> the release; .json/.json.gz -> by its records' keys,
    mpii_annotations (`img_paths`, `joint_self`) or HRNet/mmpose (`image`, `center`, `scale`).

    `split` names the split of an HRNet/mmpose file's people (its default comes from the file name:
    `kpt_tf.mpii.hrnet_json.split_from_file_name`); the other files carry their own split.
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"annotations file {path} does not exist")
    name = path.name.lower()
    if split is not None and split not in SPLITS:
        raise AnnotationError(f"split {split!r} of {path}: expected one of {', '.join(SPLITS)}")
    if name.endswith(".mat"):
        if split is not None:
            raise AnnotationError(f"{path}: a split applies only to an HRNet/mmpose json (the release .mat "
                                  "defines train and test itself, and --val_list the val people)")
        val_people = read_val_list(val_list) if val_list else None
        return read_release_mat(path, val_people)
    if val_list:
        raise AnnotationError("--val_list only applies to the release .mat; the json files carry their own "
                              "split (isValidation, or the HRNet file's name)")
    if name.endswith((".json", ".json.gz")):
        records = load_json_records(path)
        if hrnet_json.is_hrnet_records(records):
            return hrnet_json.people_from_hrnet_records(records, path, split)
        if split is not None:
            raise AnnotationError(f"{path}: a split applies only to an HRNet/mmpose json; this file's records "
                                  "carry their own (isValidation)")
        return people_from_json_records(records, path)
    raise AnnotationError(f"annotations file {path}: unknown kind (expected the release .mat, "
                          "mpii_annotations.json[.gz], the generator's annotations.json or an HRNet/mmpose "
                          "train/valid/trainval/test.json)")


def attach_validation_head_boxes(people: Sequence[PersonAnnotation], gt_path,
                                 tolerance_px: float = 0.5) -> int:
    """Give the val people (file order) the head boxes of a detections_our_format-style .mat, in order.

    Refuses (AnnotationError) unless the counts match and every person's joints agree: the annotated
    flags must be equal and each annotated coordinate within `tolerance_px`, except that a coordinate the
    .mat stores as 0 is accepted (detections_our_format.mat zeroes a few coordinates of 10 people that
    mpii_annotations.json keeps). Returns the number of people given a box.
    """
    path = Path(gt_path)
    if not path.is_file():
        raise AnnotationError(f"--val_gt {path} does not exist")
    try:
        truth = load_ground_truth(path)
    except ValueError as e:
        raise AnnotationError(f"--val_gt: {e}") from e
    val = [p for p in people if p.split == "val"]
    n_gt = len(truth)
    if len(val) != n_gt:
        raise AnnotationError(f"--val_gt {gt_path} has {n_gt} people but the annotations have {len(val)} "
                              "validation people: they are not the same split")
    for k, person in enumerate(val):
        problem = None
        if not np.array_equal(person.annotated.astype(bool), truth.annotated[k]):
            problem = "annotated joints differ"
        else:
            gt_xy = truth.positions[k]
            # A coordinate the .mat stores as 0 (-1 after the 1-based -> 0-based shift) is accepted.
            close = (np.abs(person.joints - gt_xy) <= tolerance_px) | (gt_xy == from_one_based(0.0))
            bad = (person.annotated[:, None] == 1) & ~close
            if bad.any():
                j = int(np.where(bad.any(1))[0][0])
                problem = (f"joint {j} is at {person.joints[j].round(2).tolist()} (0-based) in the annotations "
                           f"but {gt_xy[j].round(2).tolist()} in the .mat")
        if problem:
            raise AnnotationError(f"--val_gt {gt_path}: validation person {k} ({person.image}, person "
                                  f"{person.person_index}) does not match: {problem}. The .mat must list the "
                                  "annotations' validation people in the same order")
        person.head_box = truth.head_boxes[k].reshape(4).copy()
    return len(val)


def split_people(people: Iterable[PersonAnnotation]) -> dict[str, list[PersonAnnotation]]:
    """People grouped by split, each list in dataset_index order."""
    groups: dict[str, list[PersonAnnotation]] = {s: [] for s in SPLITS}
    for person in people:
        groups.setdefault(person.split, []).append(person)
    for group in groups.values():
        group.sort(key=lambda p: p.dataset_index)
    return groups


__all__ = [
    "SPLITS", "AnnotationError", "PersonAnnotation", "read_annotations", "load_json_records",
    "people_from_json_records", "read_json_annotations", "read_release_mat", "load_release", "Release",
    "single_person_rects", "release_image_name", "read_val_list", "TEST_SPLIT",
    "attach_validation_head_boxes", "split_people", "encode_json", "write_json_annotations",
]

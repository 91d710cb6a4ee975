"""MPII's test-set submission `pred_keypoints_mpii.mat`: the release's annotation list of the test images with
each test person's predicted points filled in (numpy/scipy only).

What the file holds (as the official toolkit's `evaluatePCKh.m` reads it, and as anibali/eval-mpii-pose's
`prepareTestResults.m` and the stacked-hourglass authors' `predictMPII.m` build it):
- one variable, `pred`: `RELEASE.annolist(RELEASE.img_train == 0)`, i.e. one struct per test image, in the
  release's order, with every field of the release kept (image.name, annorect with its objpos and scale,
  frame_sec, vididx). The toolkit asserts `length(pred) == length(annolist_test)` and flattens `pred`'s
  rectangles that have an objpos in order, so nothing may be dropped, added or reordered;
- for each predicted person, `annorect(r).annopoints.point` is a 1 x 16 struct array with `x`, `y` (1-based
  pixels of the source image, MPII's convention) and `id` (0-based joint id, the MPII order of
  `kpt_tf.joints`). The toolkit reads points by id (`util_get_annopoint_by_id`), so their order is free.
The toolkit scores the single-person rectangles (`RELEASE.single_person`) of the test images; a person it
scores without points counts as missed at every joint, so a submission must cover all of them
(`match_records` refuses otherwise, before any prediction is made). Other test rectangles with an objpos
(HRNet's / the stacked-hourglass `test.json` / `test.h5` hold them too) are filled when predicted: the
toolkit ignores them.

Writing keeps the release's own MATLAB structure: the release is read a second time with
`struct_as_record=True, squeeze_me=False` (numpy structured arrays, MATLAB dimensions kept), only the chosen
rectangles' `annopoints` are set, and `scipy.io.savemat` writes it back (MATLAB v5 format with compression,
which MATLAB's `save -v7` also writes). `read_submission` reads a submission back through the release reader
of `kpt_tf.mpii.annotations` (`_release_person`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from kpt_tf.geometry import adjust_person_box
from kpt_tf.joints import NUM_JOINTS
from kpt_tf.mpii.annotations import (
    AnnotationError,
    _as_list,
    _field,
    _release_person,
    load_release,
    release_image_name,
    single_person_rects,
)
from kpt_tf.mpii.coords import to_one_based

SUBMISSION_VARIABLE = "pred"
SUBMISSION_NAME = "pred_keypoints_mpii.mat"
# A record's (adjusted) centre and scale must equal a rectangle's to these tolerances to be that person
# (records store float32: about 1e-4 px; HRNet's json gives scale to 6 decimals, mpii_annotations.json to 3).
CENTER_TOLERANCE_PX = 0.5
SCALE_TOLERANCE = 0.005


@dataclasses.dataclass(frozen=True)
class TestRectangle:
    """A rectangle with objpos and scale on a test image of the release (0-based indices and pixels)."""

    test_position: int          # position of its image among the test images (= index into `pred`)
    image_index: int            # index of its image in RELEASE.annolist
    person_index: int           # index in the image's annorect
    image: str
    objpos: np.ndarray          # (2,) 0-based
    scale: float
    single_person: bool         # scored by the official single-person evaluation

    @property
    def key(self) -> tuple[int, int]:
        return self.image_index, self.person_index


@dataclasses.dataclass(frozen=True)
class RecordPerson:
    """What a test record says about its person: enough to find its rectangle in the release."""

    dataset_index: int
    image: str
    center: np.ndarray          # (2,) adjusted centre, 0-based (record `person/center`)
    scale: float                # adjusted scale (record `person/scale`)


@dataclasses.dataclass
class SubmissionTemplate:
    """The release's test images, ready to receive predictions."""

    path: Path
    test_images: np.ndarray             # annolist indices of the test images, release order
    rectangles: list[TestRectangle]     # every test rectangle with objpos and scale, release order
    _raw_release: object = None         # RELEASE as numpy structured arrays (read when writing)

    @property
    def single_person(self) -> list[TestRectangle]:
        return [r for r in self.rectangles if r.single_person]


def load_template(release_path) -> SubmissionTemplate:
    """The test images and their rectangles of the release .mat (AnnotationError naming the file otherwise)."""
    path = Path(release_path)
    if not path.is_file():
        raise AnnotationError(f"release {path} does not exist (the official mpii_human_pose_v1_u12_1.mat)")
    release = load_release(path)
    test_images = np.flatnonzero(np.asarray(release.img_train).astype(np.int64) == 0)
    if not test_images.size:
        raise AnnotationError(f"{path}: the release has no test image (img_train is 1 everywhere)")
    rectangles = []
    for position, image_index in enumerate(test_images):
        entry = release.annolist[image_index]
        rects = _as_list(_field(entry, "annorect"))
        single = set(single_person_rects(release.single_person[image_index], len(rects), path, image_index))
        name = release_image_name(entry, path, image_index)
        for person_index, rect in enumerate(rects):
            objpos, scale, *_ = _release_person(rect, f"{path} annolist({image_index + 1}).annorect"
                                                      f"({person_index + 1})")
            if objpos is None or scale is None or scale <= 0:
                continue    # the toolkit only flattens rectangles with an objpos; it cannot crop without a scale
            rectangles.append(TestRectangle(position, int(image_index), person_index, name, objpos, float(scale),
                                            person_index in single))
    return SubmissionTemplate(path, test_images, rectangles)


def match_records(template: SubmissionTemplate, people: Sequence[RecordPerson],
                  skipped: Sequence[dict] = ()) -> dict[int, TestRectangle]:
    """Each test record's rectangle, by image name and (adjusted) centre and scale -> {dataset_index: rectangle}.

    Raises ValueError, before any prediction is made, when a record matches no rectangle or several, when two
    records match one rectangle, or when a single-person test rectangle (one the official evaluation scores)
    has no record; `skipped` (the manifest's skipped people of the split) explains the last in the message.
    """
    by_image: dict[str, list[tuple[TestRectangle, np.ndarray, float]]] = {}
    for rect in template.rectangles:
        center, scale = adjust_person_box(rect.objpos, rect.scale)
        by_image.setdefault(rect.image, []).append((rect, center, float(scale)))
    matched: dict[int, TestRectangle] = {}
    owner: dict[tuple[int, int], int] = {}
    problems = []
    for person in people:
        hits = [rect for rect, center, scale in by_image.get(person.image, [])
                if np.max(np.abs(np.asarray(person.center, np.float64) - center)) <= CENTER_TOLERANCE_PX
                and abs(float(person.scale) - scale) <= SCALE_TOLERANCE * scale]
        where = f"record of test person {person.dataset_index} ({person.image})"
        if not hits:
            problems.append(f"{where} matches no test rectangle of {template.path.name} (image, objpos, scale)")
        elif len(hits) > 1:
            problems.append(f"{where} matches {len(hits)} rectangles "
                            f"({', '.join(str(h.person_index + 1) for h in hits)})")
        elif hits[0].key in owner:
            problems.append(f"{where} and test person {owner[hits[0].key]} are both annolist"
                            f"({hits[0].image_index + 1}).annorect({hits[0].person_index + 1})")
        else:
            owner[hits[0].key] = person.dataset_index
            matched[person.dataset_index] = hits[0]
    if problems:
        raise ValueError(f"{len(problems)} test records do not map one-to-one onto the release's test people: "
                         f"{'; '.join(problems[:3])}{' ...' if len(problems) > 3 else ''}; were the records made "
                         f"from this release ({template.path})?")
    unpredicted = [r for r in template.single_person if r.key not in owner]
    if unpredicted:
        reasons: dict[str, int] = {}
        for s in skipped:
            reasons[s.get("reason", "?")] = reasons.get(s.get("reason", "?"), 0) + 1
        why = ("; the converter skipped " + ", ".join(f"{n} ({reason})" for reason, n in sorted(reasons.items()))
               if reasons else "")
        first = ", ".join(f"{r.image} annorect({r.person_index + 1})" for r in unpredicted[:3])
        raise ValueError(f"{len(unpredicted)} of the {len(template.single_person)} single-person test people of "
                         f"{template.path.name} have no record, so no prediction (e.g. {first}){why}: the "
                         "official evaluation would count them as missed; convert them (all test images in "
                         "--images_dir) and evaluate again")
    return matched


def _raw_release(template: SubmissionTemplate):
    if template._raw_release is None:
        import scipy.io

        try:
            mat = scipy.io.loadmat(str(template.path), struct_as_record=True, squeeze_me=False)
            template._raw_release = mat["RELEASE"]
        except Exception as e:  # scipy raises several types
            raise AnnotationError(f"{template.path}: cannot read the release structure ({e})") from e
    return template._raw_release


def _points_struct(joints_one_based: np.ndarray) -> np.ndarray:
    """A 1 x 1 struct `annopoints` whose `point` is a 1 x 16 struct array (x, y, id), MATLAB dimensions."""
    point = np.zeros((1, NUM_JOINTS), dtype=[("x", object), ("y", object), ("id", object)])
    for j in range(NUM_JOINTS):
        point["x"][0, j] = np.array([[float(joints_one_based[j, 0])]])
        point["y"][0, j] = np.array([[float(joints_one_based[j, 1])]])
        point["id"][0, j] = np.array([[float(j)]])
    annopoints = np.zeros((1, 1), dtype=[("point", object)])
    annopoints["point"][0, 0] = point
    return annopoints


def _with_annopoints(rects: np.ndarray) -> np.ndarray:
    """An annorect struct array with an `annopoints` field (added, empty for every rectangle, if absent)."""
    if "annopoints" in rects.dtype.names:
        return rects.copy()
    out = np.zeros(rects.shape, dtype=rects.dtype.descr + [("annopoints", object)])
    for name in rects.dtype.names:
        out[name] = rects[name]
    for index in np.ndindex(rects.shape):
        out["annopoints"][index] = np.zeros((0, 0))
    return out


def write_submission(path, template: SubmissionTemplate, predictions: dict[tuple[int, int], np.ndarray]) -> int:
    """Write `pred` (the release's test images) with `predictions` {(image_index, person_index): joints (16, 2),
    0-based source-image pixels} filled in, 1-based. Atomic: a previous file at `path` stays whole until the
    new one is complete. -> the number of people written."""
    import scipy.io

    release = _raw_release(template)
    annolist = release["annolist"][0, 0]
    test_images = template.test_images
    if annolist.shape != (1, len(np.asarray(release["img_train"][0, 0]).reshape(-1))):
        raise AnnotationError(f"{template.path}: RELEASE.annolist is not a 1 x N struct array")
    pred = annolist[:, test_images].copy()
    position_of = {int(image_index): k for k, image_index in enumerate(test_images)}
    by_image: dict[int, dict[int, np.ndarray]] = {}
    for (image_index, person_index), joints in predictions.items():
        joints = np.asarray(joints, np.float64)
        if joints.shape != (NUM_JOINTS, 2) or not np.all(np.isfinite(joints)):
            raise ValueError(f"prediction of annolist({image_index + 1}).annorect({person_index + 1}) is not "
                             f"{NUM_JOINTS} finite (x, y) pairs")
        if image_index not in position_of:
            raise ValueError(f"annolist({image_index + 1}) is not a test image of {template.path.name}")
        by_image.setdefault(image_index, {})[person_index] = joints
    for image_index, people in by_image.items():
        k = position_of[image_index]
        rects = pred["annorect"][0, k]
        if not isinstance(rects, np.ndarray) or rects.dtype.names is None or rects.size <= max(people):
            raise ValueError(f"annolist({image_index + 1}) of {template.path.name} has no rectangle "
                             f"{max(people) + 1}")
        rects = _with_annopoints(rects)
        for person_index, joints in people.items():
            rects["annopoints"][np.unravel_index(person_index, rects.shape)] = _points_struct(to_one_based(joints))
        pred["annorect"][0, k] = rects
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        scipy.io.savemat(str(tmp), {SUBMISSION_VARIABLE: pred}, do_compression=True, oned_as="row")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return sum(len(p) for p in by_image.values())


@dataclasses.dataclass(frozen=True)
class SubmittedPerson:
    test_position: int          # index into `pred` (the test images in release order)
    image: str
    person_index: int           # 0-based annorect index
    joints: np.ndarray          # (16, 2) 0-based; 0 where the file has no point of that id
    has_point: np.ndarray       # (16,) bool


def read_submission(path) -> tuple[int, list[SubmittedPerson]]:
    """A submission file -> (number of images in `pred`, every rectangle that has points, file order).
    Points go through the release reader (`_release_person`): 1-based -> 0-based, ids 0..15."""
    import scipy.io

    path = Path(path)
    try:
        mat = scipy.io.loadmat(str(path), struct_as_record=False, squeeze_me=True)
    except Exception as e:  # scipy raises several types
        raise ValueError(f"submission {path} is not a readable MATLAB file: {e}") from e
    if SUBMISSION_VARIABLE not in mat:
        raise ValueError(f"submission {path} has no variable '{SUBMISSION_VARIABLE}' (found: "
                         f"{', '.join(k for k in mat if not k.startswith('__')) or 'none'})")
    entries = _as_list(mat[SUBMISSION_VARIABLE])
    people = []
    for position, entry in enumerate(entries):
        name = release_image_name(entry, path, position)
        for person_index, rect in enumerate(_as_list(_field(entry, "annorect"))):
            if _field(rect, "annopoints") is None:
                continue
            _, _, joints, annotated, _, _ = _release_person(rect, f"{path} pred({position + 1}).annorect"
                                                                  f"({person_index + 1})")
            people.append(SubmittedPerson(position, name, person_index, joints, annotated.astype(bool)))
    return len(entries), people


__all__ = ["SUBMISSION_VARIABLE", "SUBMISSION_NAME", "TestRectangle", "RecordPerson", "SubmissionTemplate",
           "SubmittedPerson", "load_template", "match_records", "write_submission", "read_submission"]

"""One person of an MPII annotation file (`PersonAnnotation`, 0-based pixels), the splits, and the per-field rules
every reader shares (kpt_tf.mpii.annotations for the release and the json files, kpt_tf.mpii.hrnet_json for
HRNet's/mmpose's files)."""

from __future__ import annotations

import dataclasses

import numpy as np

from kpt_tf.joints import NUM_JOINTS
from kpt_tf.mpii.coords import from_one_based

SPLITS = ("train", "val", "test")
# The split of MPII's test people: no joints (MPII withholds them), only objpos and scale.
TEST_SPLIT = "test"


class AnnotationError(ValueError):
    """An annotation file that cannot be read or does not say what the converter needs."""


@dataclasses.dataclass
class PersonAnnotation:
    """One person as read from an annotation file; every coordinate is 0-based source-image pixels."""

    split: str
    dataset_index: int               # position among the split's people in file order (skipped ones count)
    image: str                       # image file name, relative to --images_dir
    person_index: int                # 0-based index of the person in its image (MPII annorect index)
    image_index: int | None          # 0-based index of the image in the release's annolist, if known
    objpos: np.ndarray | None        # rough person centre (2,), None when missing or -1 in the file
    scale: float | None              # person height / 200 px, None when missing
    joints: np.ndarray               # (J, 2) float64, J joints of the data set's layout; 0 where not annotated
    annotated: np.ndarray            # (J,) int64, 1 = annotated
    visible: np.ndarray              # (J,) int64, 1 = annotated and not occluded
    head_box: np.ndarray | None = None  # (4,) x1, y1, x2, y2, None when the source has none
    duplicate_of: int | None = None  # dataset_index of an identical earlier record (set by the converter)
    # (4,) x1, y1, x2, y2: the annotated person box of data sets that give one (COCO), already clipped to the image;
    # None for MPII, whose people have a rough centre and scale instead (objpos/scale)
    box: np.ndarray | None = None
    # why the source itself says this person is not for training (COCO: a crowd region), else None
    source_skip: str | None = None


def person_box(person: PersonAnnotation) -> tuple[np.ndarray, float]:
    """(centre, scale) of the square person box a crop is built around (the crop convention, CONVENTIONS.md):
    from the annotated box where the data set gives one (geometry.box_center_scale: the longer side x 1.25, as
    HRNet and mmpose make COCO's crops at aspect ratio 1), else MPII's objpos/scale adjustment."""
    from kpt_tf import geometry

    if person.box is not None:
        center, scale = geometry.box_center_scale(np.asarray(person.box, np.float64))
    else:
        center, scale = geometry.adjust_person_box(person.objpos, person.scale)
    return np.asarray(center, np.float64), float(scale)


def empty_joints() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (np.zeros((NUM_JOINTS, 2), np.float64), np.zeros(NUM_JOINTS, np.int64),
            np.zeros(NUM_JOINTS, np.int64))


def objpos_or_none(xy) -> np.ndarray | None:
    """1-based objpos from a file -> 0-based, or None when absent or MPII's -1 placeholder."""
    if xy is None:
        return None
    xy = np.asarray(xy, np.float64).reshape(-1)
    if xy.size != 2 or not np.all(np.isfinite(xy)) or np.any(xy == -1):
        return None
    return from_one_based(xy)


def scale_or_none(value) -> float | None:
    try:
        value = float(np.asarray(value, np.float64).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None
    return value if np.isfinite(value) else None

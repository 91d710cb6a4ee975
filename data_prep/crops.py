"""One person's crop, from annotation to record: pure numpy/OpenCV, run in the converter's worker processes.

A person becomes a small picklable `CropJob`; a worker decodes an image once for all its people
(`convert_image`) and crops each (`crop_person`) into a record dict with every key of kpt_tf.data.schema
(serialized in the parent, the only process that imports TensorFlow). The crop covers `crop_margin` person
boxes around the adjusted person box (geometry.adjust_person_box / crop_affine, CONVENTIONS.md).

When every person of an image is large (the crop samples >= f source pixels per crop pixel), the JPEG is
decoded at 1/f size by libjpeg's DCT scaling (f = 2, 4, 8), which is several times cheaper and loses no
detail the crop could hold; the reduced image is mapped back exactly (reduced pixel i covers source pixels
f*i .. f*i+f-1, centre f*i + (f-1)/2). The factor is chosen by the caller from every usable person of the
image in the conversion (data_prep.shards.image_tasks), not from the people a worker happens to crop, so a
rerun that redoes only some shards decodes every image as the uninterrupted run did (byte-identical shards).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import cv2
import numpy as np

from kpt_tf import geometry
from kpt_tf.mpii.annotations import TEST_SPLIT, PersonAnnotation
from kpt_tf.mpii.person import person_box

_REDUCED_DECODE_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                         4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


@dataclasses.dataclass(frozen=True)
class CropJob:
    """What a worker needs to crop one person (picklable, small)."""

    key: tuple[str, int]           # (split, dataset_index)
    image: str
    person_index: int
    center: tuple[float, float]    # the crop's person box (kpt_tf.mpii.person.person_box), 0-based
    scale: float                   # its side / 200 px
    joints: tuple                  # (16, 2) 0-based, nested tuples
    annotated: tuple
    visible: tuple
    head_box: tuple | None


@dataclasses.dataclass(frozen=True)
class CropSettings:
    crop_size: int
    crop_margin: float
    jpeg_quality: int
    reduced_decode: bool


def person_crop_transform(center, scale, crop_size: int, crop_margin: float):
    """The 2x3 image->crop affine of one person box."""
    return geometry.crop_affine(np.asarray(center, np.float64), scale, crop_size, crop_margin)


def jpeg_dimensions(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(height, width) from a JPEG's SOF header without decoding it; None if not a parsable JPEG."""
    buffer = (np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray))
              else np.ascontiguousarray(data, np.uint8).reshape(-1))
    data = memoryview(buffer)  # indexing gives plain ints
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None
    i = 2
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                return None
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            return (height, width) if height and width else None
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        i += 2 + length
    return None


def decode_factor(jobs: Sequence[CropJob], settings: CropSettings) -> int:
    """Largest f in 1, 2, 4, 8 such that every crop of the image samples >= f source pixels per crop pixel."""
    if not settings.reduced_decode:
        return 1
    source_px_per_crop_px = min(
        geometry.PERSON_BOX_PIXELS * j.scale * settings.crop_margin / settings.crop_size for j in jobs)
    return max(f for f in _REDUCED_DECODE_FLAGS if f <= max(source_px_per_crop_px, 1.0))


def _reduced_to_image(factor: int) -> np.ndarray:
    offset = (factor - 1) / 2.0
    return np.array([[factor, 0.0, offset], [0.0, factor, offset]])


# The skip reason of a person whose image is not in --images_dir (data_prep.shards settles these before any
# worker starts; a worker reports it too when the file goes away in between).
IMAGE_MISSING = "image file missing"


def decode_image(path: str, factor: int):
    """Decode at 1/`factor` size (falls back to 1 when the header cannot confirm the scaled size)
    -> (image or None, reduction factor, (height, width) of the full image, skip reason or None)."""
    try:
        data = np.fromfile(path, np.uint8)
    except (FileNotFoundError, IsADirectoryError):
        return None, 1, None, IMAGE_MISSING
    except OSError as e:
        return None, 1, None, f"image file unreadable ({e.strerror})"
    if data.size == 0:
        return None, 1, None, "image file empty (0 bytes)"
    if data.size < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return None, 1, None, "image not a JPEG"
    if not _ends_with_jpeg_end_marker(data):
        return None, 1, None, "image truncated (no JPEG end marker)"
    full_size = jpeg_dimensions(data) if factor > 1 else None
    if full_size is None:
        factor = 1
    # EXIF orientation is ignored: annotations refer to the stored pixel grid (as MATLAB's imread reads it).
    try:
        image = cv2.imdecode(data, _REDUCED_DECODE_FLAGS[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is not None and factor > 1 and image.shape[:2] != tuple(math.ceil(s / factor) for s in full_size):
            factor = 1  # a JPEG whose header and scaled decode disagree: fall back to the full decode
            image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error:
        image = None
    if image is None:
        return None, 1, None, "image undecodable"
    if factor == 1:
        full_size = image.shape[:2]
    return image, factor, tuple(int(s) for s in full_size), None


def _ends_with_jpeg_end_marker(data: np.ndarray) -> bool:
    """A complete JPEG ends with EOI (FF D9); some writers pad after it, so the last 1 KiB is searched."""
    tail = data[-1024:].tobytes()
    return b"\xff\xd9" in tail


def crop_person(image: np.ndarray, factor: int, full_size, job: CropJob, settings: CropSettings) -> dict:
    """One person's record (every key of kpt_tf.data.schema.FEATURES) from the decoded image."""
    center, scale = np.asarray(job.center, np.float64), job.scale
    image_to_crop = person_crop_transform(center, scale, settings.crop_size, settings.crop_margin)
    decoded_to_crop = geometry.compose_affine(image_to_crop, _reduced_to_image(factor))
    crop = cv2.warpAffine(image, decoded_to_crop, (settings.crop_size, settings.crop_size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding of the crop of {job.image} person {job.person_index} failed")
    annotated = np.asarray(job.annotated, np.int64)
    joints_crop = np.where(annotated[:, None] == 1,
                           geometry.apply_affine(image_to_crop, np.asarray(job.joints, np.float64)), 0.0)
    has_box = job.head_box is not None
    return {
        "image/encoded": jpeg.tobytes(),
        "image/crop_size": settings.crop_size,
        "image/id": job.image,
        "image/original_size": np.asarray(full_size, np.int64),
        "person/index": job.person_index,
        "person/dataset_index": job.key[1],
        "person/center": center.astype(np.float32),
        "person/scale": np.float32(scale),
        "person/crop_margin": np.float32(settings.crop_margin),
        "joints/xy": joints_crop.astype(np.float32).reshape(-1),
        "joints/annotated": annotated,
        "joints/visible": np.asarray(job.visible, np.int64) * annotated,
        "crop/to_image": geometry.invert_affine(image_to_crop).astype(np.float32).reshape(-1),
        "head/box": np.asarray(job.head_box if has_box else np.zeros(4), np.float32),
        "head/has_box": int(has_box),
    }


def convert_image(task) -> list[tuple[tuple[str, int], dict | None, str | None]]:
    """Worker: decode one image once (at the task's reduction factor), crop the task's people
    -> [(key, record or None, skip reason)]."""
    path, jobs, settings, factor = task
    image, factor, full_size, reason = decode_image(path, factor)
    if image is None:
        return [(job.key, None, reason) for job in jobs]
    return [(job.key, crop_person(image, factor, full_size, job, settings), None) for job in jobs]


# Plausible MPII scales (person box 200 * scale px): real MPII spans 0.46..24.8.
MIN_SCALE, MAX_SCALE = 0.05, 100.0
# An annotated joint farther than this many person boxes from objpos (real MPII: at most 2.07) is an error.
FAR_JOINT_BOXES = 3.0


def skip_reason(person: PersonAnnotation) -> str | None:
    """Why a person cannot become a record before its image is even opened (None: usable so far).
    A test person needs no joints (MPII withholds them): only objpos and scale."""
    if person.source_skip is not None:
        return person.source_skip
    if person.objpos is None:       # the readers map -1 and NaN/inf to None
        return "objpos missing, -1 or not finite"
    if person.scale is None:
        return "scale missing or not finite"
    if person.scale <= 0:
        return "scale <= 0"
    if not MIN_SCALE <= person.scale <= MAX_SCALE:
        return f"scale outside {MIN_SCALE}..{MAX_SCALE}"
    if person.split == TEST_SPLIT:
        return "duplicate person record" if person.duplicate_of is not None else None
    if not person.annotated.any():
        return "no annotated joint"
    joints = person.joints[np.asarray(person.annotated) == 1]
    if not np.all(np.isfinite(joints)):
        return "joint coordinates not finite"
    if np.max(np.abs(joints - person.objpos)) > FAR_JOINT_BOXES * geometry.PERSON_BOX_PIXELS * person.scale:
        return f"joint farther than {FAR_JOINT_BOXES:g} person boxes from objpos"
    if person.duplicate_of is not None:
        return "duplicate person record"
    return None


def mark_duplicates(people: Sequence[PersonAnnotation]) -> int:
    """Set `duplicate_of` on every person identical (image, objpos, scale, joints) to an earlier one, in any
    split (a train/val duplicate would leak); -> how many."""
    first: dict = {}
    count = 0
    for person in people:
        key = (person.image, None if person.objpos is None else person.objpos.tobytes(), person.scale,
               np.asarray(person.joints).tobytes(), np.asarray(person.annotated).tobytes())
        if key in first:
            person.duplicate_of = first[key]
            count += 1
        else:
            first[key] = person.dataset_index
    return count


def crop_job(person: PersonAnnotation) -> CropJob:
    center, scale = person_box(person)
    return CropJob(
        key=(person.split, person.dataset_index), image=person.image, person_index=person.person_index,
        center=tuple(float(v) for v in center), scale=scale,
        joints=tuple(map(tuple, person.joints.tolist())), annotated=tuple(int(v) for v in person.annotated),
        visible=tuple(int(v) for v in person.visible),
        head_box=None if person.head_box is None else tuple(float(v) for v in person.head_box))


"""Offline converter: MPII annotations + images -> sharded TFRecords of person crops (kpt_tf.data.schema).

    python -m data_prep.mpii_to_tfrecord --annotations ../shared/mpii/mpii_annotations.json.gz
        --images_dir /data/mpii/images --output_dir /data/mpii/records [--val_gt detections_our_format.mat]

One record per usable person: a `crop_size` JPEG crop covering `crop_margin` person boxes around the
adjusted person box (geometry.adjust_person_box / crop_affine, CONVENTIONS.md), the 16 joints in crop
pixels, annotated/visible flags, centre, scale, the crop->image affine and the head box when the source
has one. People that cannot be used (objpos -1 or missing, scale <= 0, image missing or undecodable, no
annotated joint) are skipped, counted and listed with the reason in `output_dir/manifest.json`.

Shards: each split's people (file order) are cut into `num_shards` contiguous blocks; a shard is written
under a temporary name and renamed when complete, and the manifest is updated after every shard. A rerun
with the same inputs keeps the shards the manifest lists whose sha256 still matches and redoes the rest;
the output is byte-identical whatever the number of workers or interruptions.

Speed: people are grouped by image so that each image is decoded once; images are processed by
`num_workers` processes (spawned, so they never inherit TensorFlow) and serialized in this process. When
every person of an image is large (the crop samples >= f source pixels per crop pixel), the JPEG is
decoded at 1/f size by libjpeg's DCT scaling (f = 2, 4, 8), which is several times cheaper and loses no
detail the crop could hold; the reduced image is mapped back exactly (reduced pixel i covers source
pixels f*i .. f*i+f-1, centre f*i + (f-1)/2).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
from absl import app, flags

from data_prep.annotation_sources import (SPLITS, AnnotationError, PersonAnnotation,
                                          attach_validation_head_boxes, read_annotations,
                                          sha256_of_file, split_people)
from kpt_tf import geometry

MANIFEST_NAME = "manifest.json"
TMP_PREFIX = ".tmp-"
DEFAULT_NUM_SHARDS = {"train": 8, "val": 2}
_REDUCED_DECODE_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                         4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


class ConversionError(ValueError):
    """A fatal problem with the converter's inputs or flags (reported without a traceback)."""


# --------------------------------------------------------------------------------------------------
# Per-person work: pure numpy/cv2, run in worker processes (no TensorFlow there)
# --------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CropJob:
    """What a worker needs to crop one person (picklable, small)."""

    key: tuple[str, int]           # (split, dataset_index)
    image: str
    person_index: int
    objpos: tuple[float, float]    # 0-based, rough
    scale: float                   # rough (MPII scale_provided)
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


def person_crop_transform(objpos, scale, crop_size: int, crop_margin: float):
    """(adjusted centre, adjusted scale, 2x3 image->crop affine) of one person."""
    center, adjusted_scale = geometry.adjust_person_box(objpos, scale)
    return center, adjusted_scale, geometry.crop_affine(center, adjusted_scale, crop_size, crop_margin)


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
        geometry.PERSON_BOX_PIXELS * geometry.adjust_person_box(j.objpos, j.scale)[1] * settings.crop_margin
        / settings.crop_size for j in jobs)
    return max(f for f in _REDUCED_DECODE_FLAGS if f <= max(source_px_per_crop_px, 1.0))


def _reduced_to_image(factor: int) -> np.ndarray:
    offset = (factor - 1) / 2.0
    return np.array([[factor, 0.0, offset], [0.0, factor, offset]])


def decode_image(path: str, jobs: Sequence[CropJob], settings: CropSettings):
    """-> (image or None, reduction factor, (height, width) of the full image, skip reason or None)."""
    try:
        data = np.fromfile(path, np.uint8)
    except (FileNotFoundError, IsADirectoryError):
        return None, 1, None, "image file missing"
    except OSError as e:
        return None, 1, None, f"image file unreadable ({e.strerror})"
    factor = decode_factor(jobs, settings)
    full_size = jpeg_dimensions(data) if factor > 1 else None
    if full_size is None:
        factor = 1
    # EXIF orientation is ignored: annotations refer to the stored pixel grid (as MATLAB's imread reads it).
    image = cv2.imdecode(data, _REDUCED_DECODE_FLAGS[factor] | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is not None and factor > 1 and image.shape[:2] != tuple(math.ceil(s / factor) for s in full_size):
        factor = 1  # a JPEG whose header and scaled decode disagree: fall back to the full decode
        image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        return None, 1, None, "image undecodable"
    if factor == 1:
        full_size = image.shape[:2]
    return image, factor, tuple(int(s) for s in full_size), None


def crop_person(image: np.ndarray, factor: int, full_size, job: CropJob, settings: CropSettings) -> dict:
    """One person's record (every key of kpt_tf.data.schema.FEATURES) from the decoded image."""
    center, scale, image_to_crop = person_crop_transform(job.objpos, job.scale, settings.crop_size,
                                                         settings.crop_margin)
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
    """Worker: decode one image once, crop all its people -> [(key, record or None, skip reason)]."""
    path, jobs, settings = task
    image, factor, full_size, reason = decode_image(path, jobs, settings)
    if image is None:
        return [(job.key, None, reason) for job in jobs]
    return [(job.key, crop_person(image, factor, full_size, job, settings), None) for job in jobs]


def _init_worker(parent_pid: int | None = None):
    cv2.setNumThreads(1)  # one image per process; OpenCV's own threads would only contend for the cores
    if parent_pid is not None:
        # A converter killed outright (SIGKILL) cannot stop its workers, which would wait on the task queue
        # forever: each worker leaves on its own once its parent is gone.
        import threading

        def leave_when_orphaned():
            while True:
                time.sleep(1.0)
                if os.getppid() != parent_pid:
                    os._exit(1)

        threading.Thread(target=leave_when_orphaned, daemon=True).start()


# --------------------------------------------------------------------------------------------------
# Planning: splits -> shards -> image tasks
# --------------------------------------------------------------------------------------------------

def skip_reason(person: PersonAnnotation) -> str | None:
    """Why a person cannot become a record before its image is even opened (None: usable so far)."""
    if person.objpos is None:
        return "objpos missing or -1"
    if person.scale is None:
        return "scale missing"
    if person.scale <= 0:
        return "scale <= 0"
    if not person.annotated.any():
        return "no annotated joint"
    return None


def crop_job(person: PersonAnnotation) -> CropJob:
    return CropJob(
        key=(person.split, person.dataset_index), image=person.image, person_index=person.person_index,
        objpos=tuple(float(v) for v in person.objpos), scale=float(person.scale),
        joints=tuple(map(tuple, person.joints.tolist())), annotated=tuple(int(v) for v in person.annotated),
        visible=tuple(int(v) for v in person.visible),
        head_box=None if person.head_box is None else tuple(float(v) for v in person.head_box))


@dataclasses.dataclass
class ShardPlan:
    split: str
    index: int
    num_shards: int
    people: list[PersonAnnotation]   # contiguous block of the split's people, dataset_index order

    @property
    def file(self) -> str:
        return shard_file_name(self.split, self.index, self.num_shards)


def shard_file_name(split: str, index: int, num_shards: int) -> str:
    from kpt_tf.data.schema import shard_name  # imported lazily: the schema module imports TensorFlow
    return shard_name(split, index, num_shards)


def plan_shards(people_by_split: dict[str, list[PersonAnnotation]], num_shards: dict[str, int]) -> list[ShardPlan]:
    """Contiguous blocks of each split's people (file order): shard k holds [k*n/S, (k+1)*n/S)."""
    plans = []
    for split, people in people_by_split.items():
        count = num_shards[split]
        n = len(people)
        for k in range(count):
            plans.append(ShardPlan(split, k, count, people[k * n // count:(k + 1) * n // count]))
    return plans


def image_tasks(shards: Iterable[ShardPlan], images_dir: Path, settings: CropSettings):
    """Group the usable people of `shards` by image, in order of first appearance -> worker tasks."""
    groups: dict[str, list[CropJob]] = {}
    for shard in shards:
        for person in shard.people:
            if skip_reason(person) is None:
                groups.setdefault(person.image, []).append(crop_job(person))
    return [(str(images_dir / image), jobs, settings) for image, jobs in groups.items()]


# --------------------------------------------------------------------------------------------------
# Writing: ordered per-shard assembly, atomic publication, manifest
# --------------------------------------------------------------------------------------------------

class _ShardWriter:
    """Receives one shard's results in any order and writes them in dataset_index order to a .tmp file."""

    def __init__(self, plan: ShardPlan, output_dir: Path):
        self.plan = plan
        self.final_path = output_dir / plan.file
        self.tmp_path = output_dir / (TMP_PREFIX + plan.file)
        self._writer = None  # opened at the first person settled: many shards need not mean many open files
        self._first = plan.people[0].dataset_index if plan.people else 0
        self._pending: dict[int, tuple[bytes | None, str | None]] = {}
        self._next = 0
        self.records = 0
        self.skipped: list[dict] = []

    def add(self, dataset_index: int, serialized: bytes | None, reason: str | None):
        self._pending[dataset_index - self._first] = (serialized, reason)
        if self._writer is None and self._next in self._pending:
            self._open()
        while self._next in self._pending:
            serialized, reason = self._pending.pop(self._next)
            person = self.plan.people[self._next]
            if serialized is not None:
                self._writer.write(serialized)
                self.records += 1
            else:
                self.skipped.append({"split": person.split, "dataset_index": person.dataset_index,
                                     "image": person.image, "person": person.person_index, "reason": reason})
            self._next += 1

    def _open(self):
        import tensorflow as tf

        self._writer = tf.io.TFRecordWriter(str(self.tmp_path))

    @property
    def done(self) -> bool:
        return self._next == len(self.plan.people)

    def publish(self) -> dict:
        """Close, flush to disk and rename atomically; -> the shard's manifest entry."""
        if self._writer is None:  # a shard without people: an empty file
            self._open()
        self._writer.close()
        with open(self.tmp_path, "rb") as f:
            os.fsync(f.fileno())
        digest = sha256_of_file(self.tmp_path)
        os.replace(self.tmp_path, self.final_path)
        return shard_entry(self.plan, self.records, digest, self.skipped)

    def abandon(self):
        if self._writer is None:
            return
        try:
            self._writer.close()
        except Exception:  # the writer may already be closed; the .tmp file is redone on the next run
            pass


def shard_entry(plan: ShardPlan, records: int, digest: str, skipped: list[dict]) -> dict:
    people = plan.people
    span = [people[0].dataset_index, people[-1].dataset_index + 1] if people else [0, 0]
    return {"file": plan.file, "split": plan.split, "records": records, "sha256": digest,
            "read": len(people), "people": span, "skipped": skipped}


def _write_json_atomic(path: Path, payload: dict):
    tmp = path.with_name(TMP_PREFIX + path.name)
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def build_manifest(shard_entries: dict[str, dict], num_shards: dict[str, int], flag_values: dict,
                   content: dict, complete: bool) -> dict:
    """The public manifest; shard entries keep their skip lists internally for resumption."""
    entries = sorted(shard_entries.values(), key=lambda e: (SPLITS.index(e["split"]) if e["split"] in SPLITS
                                                            else len(SPLITS), e["file"]))
    splits: dict[str, dict] = {}
    skipped = []
    for e in entries:
        s = splits.setdefault(e["split"], {"read": 0, "written": 0, "skipped": 0,
                                           "num_shards": num_shards.get(e["split"])})
        s["read"] += e["read"]
        s["written"] += e["records"]
        s["skipped"] += len(e["skipped"])
        skipped.extend(e["skipped"])
    return {
        "complete": complete,
        "splits": splits,
        "skipped": skipped,
        "shards": [{k: e[k] for k in ("file", "split", "records", "sha256", "read", "people")}
                   for e in entries],
        "flags": flag_values,
        "content": content,
    }


def _entries_from_manifest(manifest: dict) -> dict[str, dict]:
    """Shard entries (with their skip lists) back from a manifest written by build_manifest."""
    entries = {}
    for shard in manifest.get("shards", []):
        lo, hi = shard["people"]
        skipped = [s for s in manifest.get("skipped", [])
                   if s["split"] == shard["split"] and lo <= s["dataset_index"] < hi]
        entries[shard["file"]] = dict(shard, skipped=skipped)
    return entries


# --------------------------------------------------------------------------------------------------
# The conversion
# --------------------------------------------------------------------------------------------------

def parse_num_shards(value, splits: Sequence[str]) -> dict[str, int]:
    """'8' (every split), 'train=8,val=2', an int or a dict -> {split: count >= 1} for `splits`."""
    if isinstance(value, dict):
        table = dict(value)
    elif isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        table = {s: int(value) for s in splits}
    else:
        table = {}
        for item in str(value).split(","):
            if not item.strip():
                continue
            name, sep, count = item.partition("=")
            if not sep or not count.strip().lstrip("-").isdigit():
                raise ConversionError(f"--num_shards {value!r}: expected an integer or 'split=count,...'")
            table[name.strip()] = int(count)
    for split in splits:
        table.setdefault(split, DEFAULT_NUM_SHARDS.get(split, 1))
    if bad := {s: n for s, n in table.items() if n < 1}:
        raise ConversionError(f"--num_shards: shard counts must be >= 1, got {bad}")
    if unknown := sorted(set(table) - set(SPLITS)):
        raise ConversionError(f"--num_shards names unknown splits {unknown} (known: {', '.join(SPLITS)})")
    return {s: table[s] for s in splits}


def parse_splits(value) -> list[str]:
    splits = [s.strip() for s in (value.split(",") if isinstance(value, str) else value) if s.strip()]
    if not splits:
        raise ConversionError("--splits is empty")
    if unknown := [s for s in splits if s not in SPLITS]:
        raise ConversionError(f"--splits: unknown split(s) {unknown}; known: {', '.join(SPLITS)}")
    return list(dict.fromkeys(splits))


def _check_settings(crop_size, crop_margin, max_people, num_workers, jpeg_quality):
    if not 8 <= crop_size <= 4096:
        raise ConversionError(f"--crop_size {crop_size}: expected 8..4096 pixels")
    if not (math.isfinite(crop_margin) and 1.0 <= crop_margin <= 4.0):
        raise ConversionError(f"--crop_margin {crop_margin}: expected 1.0..4.0 person boxes "
                              "(the crop must contain the person box)")
    if max_people < 0:
        raise ConversionError(f"--max_people {max_people}: expected >= 0 (0 = all)")
    if num_workers < 1:
        raise ConversionError(f"--num_workers {num_workers}: expected >= 1")
    if not 1 <= jpeg_quality <= 100:
        raise ConversionError(f"--jpeg_quality {jpeg_quality}: expected 1..100")


def convert(annotations, images_dir, output_dir, splits: Sequence[str] | str = SPLITS,
            num_shards=None, crop_size: int = 384, crop_margin: float = 1.5, max_people: int = 0,
            num_workers: int = 1, jpeg_quality: int = 95, val_gt=None, val_list=None,
            reduced_decode: bool = True, progress: bool = True) -> dict:
    """Convert; -> the manifest (also written to output_dir/manifest.json). Raises ConversionError."""
    splits = parse_splits(splits)
    num_shards = parse_num_shards(DEFAULT_NUM_SHARDS if num_shards is None else num_shards, splits)
    _check_settings(crop_size, crop_margin, max_people, num_workers, jpeg_quality)
    annotations, images_dir, output_dir = Path(annotations), Path(images_dir), Path(output_dir)
    if not images_dir.is_dir():
        raise ConversionError(f"--images_dir {images_dir} is not a directory")
    try:
        people = read_annotations(annotations, val_list)
        if val_gt:
            attach_validation_head_boxes(people, val_gt)
    except AnnotationError as e:
        raise ConversionError(str(e)) from e
    by_split = split_people(people)
    selected = {s: by_split.get(s, [])[:max_people or None] for s in splits}
    for split in splits:
        if not selected[split]:
            print(f"mpii_to_tfrecord: warning: split {split!r} has no people in {annotations}; its "
                  f"{num_shards[split]} shard(s) will be empty", file=sys.stderr)

    flag_values = {"annotations": str(annotations), "images_dir": str(images_dir),
                   "output_dir": str(output_dir), "splits": list(splits), "num_shards": num_shards,
                   "crop_size": crop_size, "crop_margin": crop_margin, "max_people": max_people,
                   "num_workers": num_workers, "jpeg_quality": jpeg_quality,
                   "val_gt": str(val_gt) if val_gt else None, "val_list": str(val_list) if val_list else None,
                   "reduced_decode": bool(reduced_decode)}
    # What decides the bytes of a shard (paths are not: moved inputs give the same records).
    content = {"annotations_sha256": sha256_of_file(annotations),
               "val_gt_sha256": sha256_of_file(val_gt) if val_gt else None,
               "val_list_sha256": sha256_of_file(val_list) if val_list else None,
               "crop_size": crop_size, "crop_margin": crop_margin, "max_people": max_people,
               "jpeg_quality": jpeg_quality, "reduced_decode": bool(reduced_decode)}

    output_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = output_dir / MANIFEST_NAME
    entries, all_num_shards = _previous_entries(manifest_path, content, num_shards)
    all_num_shards.update(num_shards)
    plans = plan_shards(selected, num_shards)
    reusable = set()
    for plan in plans:
        entry = entries.get(plan.file)
        if (entry and entry["read"] == len(plan.people) and (output_dir / plan.file).is_file()
                and sha256_of_file(output_dir / plan.file) == entry["sha256"]):
            reusable.add(plan.file)
        else:
            entries.pop(plan.file, None)
    pending = [p for p in plans if p.file not in reusable]
    if reusable:
        print(f"mpii_to_tfrecord: {len(reusable)} complete shard(s) kept from a previous run, "
              f"{len(pending)} to write", file=sys.stderr)

    def save(complete: bool) -> dict:
        manifest = build_manifest(entries, all_num_shards, flag_values, content, complete)
        _write_json_atomic(manifest_path, manifest)
        return manifest

    save(complete=not pending)
    if pending:
        _write_shards(pending, output_dir, images_dir,
                      CropSettings(crop_size, float(crop_margin), jpeg_quality, bool(reduced_decode)),
                      num_workers, progress, entries, save)
    return save(complete=True)


def _previous_entries(manifest_path: Path, content: dict, num_shards: dict[str, int]):
    """Shard entries of a previous run in the same output_dir, refusing one made from other inputs."""
    if not manifest_path.is_file():
        return {}, {}
    try:
        previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = _entries_from_manifest(previous)
        previous_content = previous["content"]
        previous_shards = {s: v.get("num_shards") for s, v in previous.get("splits", {}).items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConversionError(f"{manifest_path} exists but is not a manifest of this converter ({e!r}); "
                              "use an empty --output_dir") from e
    if previous_content != content:
        changed = sorted(k for k in set(content) | set(previous_content)
                         if content.get(k) != previous_content.get(k))
        raise ConversionError(f"--output_dir {manifest_path.parent} holds records made with other inputs or "
                              f"settings (differs in: {', '.join(changed)}); use a new --output_dir or "
                              "empty this one")
    for split, count in num_shards.items():
        if previous_shards.get(split) not in (None, count):
            raise ConversionError(f"--output_dir {manifest_path.parent} holds split {split!r} in "
                                  f"{previous_shards[split]} shards, not {count}; use a new --output_dir")
    return entries, {s: n for s, n in previous_shards.items() if n is not None}


def _write_shards(pending: list[ShardPlan], output_dir: Path, images_dir: Path, settings: CropSettings,
                  num_workers: int, progress: bool, entries: dict, save):
    from tqdm import tqdm

    from kpt_tf.data.schema import encode_example

    writers = {(p.split, p.index): _ShardWriter(p, output_dir) for p in pending}
    shard_of = {}
    for p in pending:
        for person in p.people:
            shard_of[(person.split, person.dataset_index)] = writers[(p.split, p.index)]

    def finish_ready(writer: _ShardWriter):
        if writer.done and writer.plan.file not in entries:
            entries[writer.plan.file] = writer.publish()
            save(complete=False)

    # People skipped before any image is opened, and empty shards, are settled first.
    for p in pending:
        for person in p.people:
            reason = skip_reason(person)
            if reason:
                shard_of[(person.split, person.dataset_index)].add(person.dataset_index, None, reason)
    for writer in writers.values():
        finish_ready(writer)

    tasks = image_tasks(pending, images_dir, settings)
    total = sum(len(jobs) for _, jobs, _ in tasks)
    bar = tqdm(total=total, unit="people", desc="crops", disable=not progress, mininterval=1.0,
               smoothing=0.1, file=sys.stderr)
    executor = None
    try:
        if num_workers > 1 and len(tasks) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: workers start clean instead of forking a process that has imported TensorFlow; an
            # executor (not multiprocessing.Pool) so that a worker that dies raises instead of hanging.
            executor = ProcessPoolExecutor(num_workers, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_init_worker, initargs=(os.getpid(),))
            results = executor.map(convert_image, tasks, chunksize=4)  # in task order: deterministic
        else:
            _init_worker()
            results = map(convert_image, tasks)
        for task_results in results:
            for key, record, reason in task_results:
                writer = shard_of[key]
                writer.add(key[1], encode_example(record) if record is not None else None, reason)
                finish_ready(writer)
            bar.update(len(task_results))
    except BaseException:
        for writer in writers.values():
            if writer.plan.file not in entries:
                writer.abandon()
        raise
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        bar.close()
    if unfinished := [w.plan.file for w in writers.values() if w.plan.file not in entries]:
        raise RuntimeError(f"internal error: shards {unfinished} did not receive all their people")


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------

FLAGS = flags.FLAGS


def define_flags():
    """The CLI flags; defined only when run as a program, so that importing this module (tests, other
    tools) never collides with another module's flags of the same name (absl flags are global)."""
    flags.DEFINE_string("annotations", None, "mpii_human_pose_v1_u12_1.mat, mpii_annotations.json[.gz] or the "
                        "generator's annotations.json")
    flags.DEFINE_string("images_dir", None, "Directory holding the MPII images (file names as in the annotations).")
    flags.DEFINE_string("output_dir", None, "Where the shards and manifest.json go (created).")
    flags.DEFINE_string("splits", "train,val", "Comma-separated splits to write (train, val).")
    flags.DEFINE_string("num_shards", "train=8,val=2", "Shards per split: one integer for every split, or "
                        "'split=count,...'.")
    flags.DEFINE_integer("crop_size", 384, "Side of the stored square crop, pixels.")
    flags.DEFINE_float("crop_margin", 1.5, "Crop side in person boxes (200 * adjusted scale px): 1.5 leaves room "
                       "for rotation +-30 deg and zoom 0.75-1.25 of a 256 px model input.")
    flags.DEFINE_integer("max_people", 0, "Convert only the first N people of each split (0 = all).")
    flags.DEFINE_integer("num_workers", len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                         else (os.cpu_count() or 1), "Image decoding/cropping processes.")
    flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of the stored crops.")
    flags.DEFINE_string("val_gt", None, "detections_our_format-style .mat whose head boxes are given to the val "
                        "people, in order (checked against their joints).")
    flags.DEFINE_string("val_list", None, "Release .mat only: the val people, as a text file of 1-based "
                        "'annolist_index people_index' lines or an mpii_annotations.json[.gz] (its isValidation "
                        "people). Without it every release training person goes to 'train'.")
    flags.DEFINE_boolean("reduced_decode", True, "Decode large images at 1/2, 1/4 or 1/8 size when every crop of "
                         "the image downsamples at least that much (faster, same crop detail).")
    flags.DEFINE_boolean("progress", True, "Show a progress bar.")
    flags.mark_flags_as_required(["annotations", "images_dir", "output_dir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        manifest = convert(FLAGS.annotations, FLAGS.images_dir, FLAGS.output_dir, FLAGS.splits,
                           FLAGS.num_shards, FLAGS.crop_size, FLAGS.crop_margin, FLAGS.max_people,
                           FLAGS.num_workers, FLAGS.jpeg_quality, FLAGS.val_gt, FLAGS.val_list,
                           FLAGS.reduced_decode, FLAGS.progress)
    except ConversionError as e:
        raise SystemExit(f"mpii_to_tfrecord: error: {e}") from None
    for split, counts in manifest["splits"].items():
        print(f"{split}: read {counts['read']}, written {counts['written']}, skipped {counts['skipped']} "
              f"({counts['num_shards']} shards)")
    reasons: dict[str, int] = {}
    for s in manifest["skipped"]:
        reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
    for reason, count in sorted(reasons.items()):
        print(f"  skipped, {reason}: {count}")
    if reasons.get("image file missing") and not any(c["written"] for c in manifest["splits"].values()):
        print(f"warning: none of the images was found in --images_dir {FLAGS.images_dir}: is it the right "
              "directory?", file=sys.stderr)
    print(f"manifest: {Path(FLAGS.output_dir) / MANIFEST_NAME}")


def _exit_on_sigterm(signum, frame):
    # SystemExit unwinds normally: unfinished shards are abandoned as .tmp files and the workers stopped.
    raise SystemExit(f"mpii_to_tfrecord: stopped by signal {signum}; rerun the same command to finish")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    define_flags()
    app.run(main)

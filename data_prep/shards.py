"""The converter's output: shard plan, ordered shard writing with atomic publication, manifest entries.

Each split's people (file order) are cut into `num_shards` contiguous blocks. A shard is written under a
temporary name (`TMP_PREFIX`) in dataset_index order whatever order its people's results arrive in, fsynced,
hashed and renamed when complete; its manifest entry (kpt_tf.data.manifest) is then published by the caller.
Images are cropped by worker processes (data_prep.workers, data_prep.crops); records are serialized here,
in the only process that imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Iterable

from data_prep import workers
from data_prep.crops import (
    IMAGE_MISSING,
    CropJob,
    CropSettings,
    convert_image,
    crop_job,
    decode_factor,
    skip_reason,
)
from kpt_tf.data import manifest as mf
from kpt_tf.mpii.annotations import PersonAnnotation

TMP_PREFIX = ".tmp-"


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


def image_tasks(pending: Iterable[ShardPlan], images_dir: Path, settings: CropSettings,
                all_shards: Iterable[ShardPlan], missing_images: frozenset = frozenset()):
    """Group the usable people of the `pending` shards by image, in order of first appearance -> worker tasks
    (path, jobs, settings, decode factor). The factor comes from every usable person of the image in
    `all_shards` (the whole conversion), so a rerun of some shards decodes each image as a full run does.
    People of `missing_images` (settled as skips by the caller) get no task."""
    pending_files = {shard.file for shard in pending}
    groups: dict[str, list[CropJob]] = {}
    everyone: dict[str, list[CropJob]] = {}
    for shard in all_shards:
        for person in shard.people:
            if person.image not in missing_images and skip_reason(person) is None:
                job = crop_job(person)
                everyone.setdefault(person.image, []).append(job)
                if shard.file in pending_files:
                    groups.setdefault(person.image, []).append(job)
    return [(str(images_dir / image), jobs, settings, decode_factor(everyone[image], settings))
            for image, jobs in groups.items()]


class ShardWriter:
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
                self.skipped.append({mf.SKIP_SPLIT: person.split, mf.SKIP_DATASET_INDEX: person.dataset_index,
                                     mf.SKIP_IMAGE: person.image, mf.SKIP_PERSON: person.person_index,
                                     mf.SKIP_REASON: reason})
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
        digest = mf.sha256_of_file(self.tmp_path)
        os.replace(self.tmp_path, self.final_path)
        return shard_entry(self.plan, self.records, digest, self.skipped)

    def abandon(self):
        """Close and remove the unfinished .tmp file (a rerun redoes the shard; a full disk gets its space back)."""
        if self._writer is None:
            return
        try:
            self._writer.close()
        except Exception:  # the writer may already be closed, or the disk full
            pass
        self.tmp_path.unlink(missing_ok=True)


def shard_entry(plan: ShardPlan, records: int, digest: str, skipped: list[dict]) -> dict:
    people = plan.people
    span = [people[0].dataset_index, people[-1].dataset_index + 1] if people else [0, 0]
    return {mf.SHARD_FILE: plan.file, mf.SHARD_SPLIT: plan.split, mf.SHARD_RECORDS: records,
            mf.SHARD_SHA256: digest, mf.SHARD_READ: len(people), mf.SHARD_PEOPLE: span, mf.ENTRY_SKIPPED: skipped}


def json_lines(payload: dict) -> str:
    """A dict as JSON with one line per top-level key and one per element of a top-level list (a skipped
    person, a shard): readable, and written by json's C encoder (the indenting encoder is pure Python: 25,199
    skipped people took 0.7 s per manifest write, and the manifest is rewritten after every shard)."""
    parts = []
    for key, value in payload.items():
        if isinstance(value, list) and value:
            items = ",\n  ".join(json.dumps(v) for v in value)
            parts.append(f"{json.dumps(key)}: [\n  {items}\n ]")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "{\n " + ",\n ".join(parts) + "\n}\n"


def write_json_atomic(path: Path, payload: dict):
    tmp = path.with_name(TMP_PREFIX + path.name)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json_lines(payload))
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)    # the previous file under `path` stays whole
        raise
    os.replace(tmp, path)


def write_shards(pending: list[ShardPlan], all_shards: list[ShardPlan], output_dir: Path, images_dir: Path,
                 settings: CropSettings, num_workers: int, progress: bool, entries: dict, save, layout):
    """Crop and write the `pending` shards (records of `layout`'s joints), publishing each shard's manifest entry
    through `save` as it completes."""
    from tqdm import tqdm

    from kpt_tf.data.schema import encode_example

    writers = {(p.split, p.index): ShardWriter(p, output_dir) for p in pending}
    shard_of = {}
    for p in pending:
        for person in p.people:
            shard_of[(person.split, person.dataset_index)] = writers[(p.split, p.index)]

    def finish_ready(writer: ShardWriter):
        if writer.done and writer.plan.file not in entries:
            entries[writer.plan.file] = writer.publish()
            save(complete=False)

    # People skipped before any image is opened (their annotation; their image is not in images_dir: one
    # stat per image here, not a worker task per person), and empty shards, are settled first.
    present: dict[str, bool] = {}
    for p in pending:
        for person in p.people:
            reason = skip_reason(person)
            if reason is None:
                if person.image not in present:
                    present[person.image] = (images_dir / person.image).is_file()
                reason = None if present[person.image] else IMAGE_MISSING
            if reason:
                shard_of[(person.split, person.dataset_index)].add(person.dataset_index, None, reason)
    for writer in writers.values():
        finish_ready(writer)

    missing = frozenset(image for image, here in present.items() if not here)
    tasks = image_tasks(pending, images_dir, settings, all_shards, missing)
    total = sum(len(task[1]) for task in tasks)
    bar = tqdm(total=total, unit="people", desc="crops", disable=not progress, mininterval=1.0,
               smoothing=0.1, file=sys.stderr)
    try:
        with workers.ordered_map(convert_image, tasks, num_workers, chunksize=4) as results:  # in task order
            for task_results in results:
                for key, record, reason in task_results:
                    writer = shard_of[key]
                    writer.add(key[1], encode_example(record, layout) if record is not None else None, reason)
                    finish_ready(writer)
                bar.update(len(task_results))
    except BaseException as error:
        for writer in writers.values():
            if writer.plan.file not in entries:
                writer.abandon()
        tf = sys.modules.get("tensorflow")
        if tf is not None and isinstance(error, tf.errors.OpError):
            # TFRecordWriter reports a full disk (or a file size limit) as a TF error naming the .tmp file.
            raise OSError(f"{output_dir}: cannot write shard data ({error.message.strip()}); the "
                          f"{len(entries)} shards finished before it are kept and listed in {mf.MANIFEST_NAME}; "
                          "free space and rerun the same command to continue") from None
        raise
    finally:
        bar.close()
    if unfinished := [w.plan.file for w in writers.values() if w.plan.file not in entries]:
        raise RuntimeError(f"internal error: shards {unfinished} did not receive all their people")

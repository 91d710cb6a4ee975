"""Damaged TFRecord shards: naming the shard behind tf.data's anonymous `DataLossError`, and, for runs that skip
damaged records (`data.skip_damaged_records`, `kpt_tf.evaluate --skip_damaged_records`), finding and counting
what a damaged shard loses.
"""

from __future__ import annotations

import contextlib
import os

import tensorflow as tf

from kpt_tf.data import manifest
from kpt_tf.data.records import shard_files


def read_until_damage(path: str) -> tuple[int, str | None]:
    """(records read, the first read error) of one shard (TFRecord length and data CRCs); error None when the
    shard reads whole. The records counted are those before the error: the ones a `skip_damaged` pipeline uses."""
    records = 0
    try:
        for _ in tf.data.TFRecordDataset(path):
            records += 1
    except tf.errors.DataLossError as e:
        return records, e.message.splitlines()[0]
    return records, None


@contextlib.contextmanager
def naming_damaged_shards(data_dir, *splits):
    """Turns tf.data's `DataLossError: corrupted record at N` (which names no file) into a ValueError naming
    the damaged shard(s) of `splits`, found by re-reading each (only after the error)."""
    try:
        yield
    except tf.errors.DataLossError as e:
        damaged = [(f, why) for split in splits for f in shard_files(data_dir, split)
                   if (why := read_until_damage(f)[1])]
        where = "; ".join(f"{f}: {why}" for f, why in damaged) or f"a shard in {os.fspath(data_dir)}: {e.message}"
        raise ValueError(f"damaged TFRecord shard ({where}); rerun data_prep.mpii_to_tfrecord with the same "
                         "flags: it checks every shard's sha256 against manifest.json and redoes the damaged "
                         "one") from None


def damaged_records(data_dir, split: str) -> list[dict]:
    """The shards of `split` that do not read whole, for `skip_damaged` pipelines:
    [{"file", "error", "readable", "lost"}] -- `lost` is the records past the first damaged one (a TFRecord file
    has no marker to resynchronise on, so the rest of a damaged shard is lost), None when no manifest says how
    many the shard holds. Shards whose sha256 equals the manifest's are only hashed, not parsed."""
    content = manifest.read_manifest(data_dir)
    entries = content.get(manifest.SHARDS, []) if isinstance(content, dict) else []
    by_name = {e[manifest.SHARD_FILE]: e for e in entries if isinstance(e, dict) and manifest.SHARD_FILE in e}
    damaged = []
    for file in shard_files(data_dir, split):
        entry = by_name.get(os.path.basename(file), {})
        if entry.get(manifest.SHARD_SHA256) and manifest.sha256_of_file(file) == entry[manifest.SHARD_SHA256]:
            continue
        readable, error = read_until_damage(file)
        if error is None:
            continue
        expected = entry.get(manifest.SHARD_RECORDS)
        damaged.append({"file": file, "error": error, "readable": readable,
                        "lost": None if expected is None else max(int(expected) - readable, 0)})
    return damaged


def damaged_totals(damaged: list[dict]) -> dict:
    """{"shards", "records_lost"} of a `damaged_records` list (records_lost None when one shard's is unknown):
    what train_summary.json and the evaluation report record."""
    lost = [d["lost"] for d in damaged]
    return {"shards": len(damaged), "records_lost": None if None in lost else sum(lost)}


def describe_damaged(split: str, damaged: list[dict]) -> str:
    """One line per damaged shard, for the log of a run that skips them."""
    return "\n".join(
        f"skipping damaged records of {split!r}: {d['file']}: {d['error']}; {d['readable']} records before the "
        f"damage are used, " + (f"{d['lost']} after it are lost" if d["lost"] is not None
                                 else "an unknown number after it are lost (no manifest.json)") for d in damaged)

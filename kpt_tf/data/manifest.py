"""The converter's `manifest.json`: its name, its keys, how it is built, how a split's count and the records'
keypoint layout are read from it.

TF-free at import, shared by the writer (data_prep.mpii_to_tfrecord, whose workers must not import TensorFlow) and
the readers (kpt_tf.data.splits.count_records, kpt_tf.data.damaged, `records_layout`). Layout:

    {"complete": bool,                         # false while shards are still being written
     "layout": name,                           # the records' keypoint layout (kpt_tf.layouts); absent: mpii16
     "splits": {split: {"read", "written", "skipped", "num_shards"}},
     "skipped": [{"split", "dataset_index", "image", "person", "reason"}, ...],
     "shards": [{"file", "split", "records", "sha256", "read", "people": [first, end)}, ...],
     "flags": {...}, "content": {...}}         # the converter's settings; `content` decides the bytes
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Sequence

from kpt_tf import layouts
from kpt_tf.layouts import KeypointLayout

MANIFEST_NAME = "manifest.json"

# Top-level keys.
COMPLETE, SPLITS, SKIPPED, SHARDS, FLAGS, CONTENT = "complete", "splits", "skipped", "shards", "flags", "content"
LAYOUT = "layout"
# Keys of a shard entry.
SHARD_FILE, SHARD_SPLIT, SHARD_RECORDS, SHARD_SHA256, SHARD_READ, SHARD_PEOPLE = (
    "file", "split", "records", "sha256", "read", "people")
SHARD_KEYS = (SHARD_FILE, SHARD_SPLIT, SHARD_RECORDS, SHARD_SHA256, SHARD_READ, SHARD_PEOPLE)
# Keys of a split's totals.
SPLIT_READ, SPLIT_WRITTEN, SPLIT_SKIPPED, SPLIT_NUM_SHARDS = "read", "written", "skipped", "num_shards"
# Keys of a skipped person.
SKIP_SPLIT, SKIP_DATASET_INDEX, SKIP_IMAGE, SKIP_PERSON, SKIP_REASON = (
    "split", "dataset_index", "image", "person", "reason")
# Internal to the converter: a shard entry's own skip list (not written per shard, rebuilt on resumption).
ENTRY_SKIPPED = "skipped"


def sha256_of_file(path, chunk_bytes: int = 1 << 20) -> str:
    """The digest a shard entry records (SHARD_SHA256). Remote paths (gs://, s3://, hdfs://) are read through
    tf.io.gfile, as the pipeline reads the shards themselves."""
    digest = hashlib.sha256()
    if "://" in str(path):
        import tensorflow as tf  # lazily: the converter's worker processes import this module without TF

        opened = tf.io.gfile.GFile(str(path), "rb")
    else:
        opened = open(path, "rb")
    with opened as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(data_dir) -> dict | None:
    """The converter's manifest.json of `data_dir` (local or remote, through tf.io.gfile), or None when there is
    none or it is not JSON."""
    import tensorflow as tf  # lazily, as in sha256_of_file

    path = os.path.join(os.fspath(data_dir), MANIFEST_NAME)
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    except json.JSONDecodeError:
        return None


def build_manifest(shard_entries: dict[str, dict], num_shards: dict[str, int], flag_values: dict, content: dict,
                   complete: bool, split_order: Sequence[str] = (), layout: str | None = None) -> dict:
    """The public manifest from the shard entries (each with its skip list); splits sorted by `split_order`.
    `layout`: the records' keypoint layout, written when given; MPII's converter gives none (a manifest without
    one is mpii16's, so its manifests are what they were before layouts existed)."""
    if layout is not None and layout not in layouts.LAYOUTS:
        raise ValueError(f"manifest layout {layout!r} is not a keypoint layout ({', '.join(layouts.LAYOUTS)})")
    order = list(split_order)
    entries = sorted(shard_entries.values(),
                     key=lambda e: (order.index(e[SHARD_SPLIT]) if e[SHARD_SPLIT] in order else len(order),
                                    e[SHARD_FILE]))
    splits: dict[str, dict] = {}
    skipped = []
    for e in entries:
        s = splits.setdefault(e[SHARD_SPLIT], {SPLIT_READ: 0, SPLIT_WRITTEN: 0, SPLIT_SKIPPED: 0,
                                               SPLIT_NUM_SHARDS: num_shards.get(e[SHARD_SPLIT])})
        s[SPLIT_READ] += e[SHARD_READ]
        s[SPLIT_WRITTEN] += e[SHARD_RECORDS]
        s[SPLIT_SKIPPED] += len(e[ENTRY_SKIPPED])
        skipped.extend(e[ENTRY_SKIPPED])
    return {
        COMPLETE: complete,
        **({LAYOUT: layout} if layout is not None else {}),
        SPLITS: splits,
        SKIPPED: skipped,
        SHARDS: [{k: e[k] for k in SHARD_KEYS} for e in entries],
        FLAGS: flag_values,
        CONTENT: content,
    }


def records_layout(data_dir) -> KeypointLayout:
    """The keypoint layout of the records in `data_dir`: its manifest's `layout`, mpii16 when the manifest names
    none or there is no readable manifest (every record directory written before layouts holds MPII's 16 joints).
    The one place the pipeline, the training loop and evaluation learn which joints the records hold."""
    content = read_manifest(data_dir) if os.fspath(data_dir) else None    # "": no directory given yet
    name = content.get(LAYOUT, layouts.DEFAULT_LAYOUT) if isinstance(content, dict) else layouts.DEFAULT_LAYOUT
    if name not in layouts.LAYOUTS:
        raise ValueError(f"{os.path.join(os.fspath(data_dir), MANIFEST_NAME)}: {LAYOUT} {name!r} is not a keypoint "
                         f"layout ({', '.join(layouts.LAYOUTS)})")
    return layouts.layout(name)


def entries_from_manifest(manifest: dict) -> dict[str, dict]:
    """Shard entries (with their skip lists) back from a manifest written by build_manifest."""
    entries = {}
    for shard in manifest.get(SHARDS, []):
        lo, hi = shard[SHARD_PEOPLE]
        skipped = [s for s in manifest.get(SKIPPED, [])
                   if s[SKIP_SPLIT] == shard[SHARD_SPLIT] and lo <= s[SKIP_DATASET_INDEX] < hi]
        entries[shard[SHARD_FILE]] = dict(shard, **{ENTRY_SKIPPED: skipped})
    return entries


def split_record_count(manifest: dict, split: str, shard_names: Sequence[str]) -> int | None:
    """The record count of `split` from a manifest dict, or None when it cannot be trusted.

    The manifest lists every published shard with its record count; the count is used only when the shards
    listed for the split are exactly `shard_names` (the shard files on disk). A manifest without shard
    entries is trusted through its split totals only when complete.
    """
    shards = [s for s in manifest.get(SHARDS, []) if isinstance(s, dict) and s.get(SHARD_SPLIT) == split]
    if shards:
        listed = sorted(os.path.basename(str(s.get(SHARD_FILE, ""))) for s in shards)
        if listed == sorted(shard_names) and all(isinstance(s.get(SHARD_RECORDS), int) for s in shards):
            return sum(s[SHARD_RECORDS] for s in shards)
        return None
    entry = (manifest.get(SPLITS) or {}).get(split)
    if isinstance(entry, dict) and isinstance(entry.get(SPLIT_WRITTEN), int) and manifest.get(COMPLETE, True):
        return entry[SPLIT_WRITTEN]
    return None

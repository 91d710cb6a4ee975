"""What a split of a records directory holds, read without building a training stream: its record count, how many
people the converter read for it, the person fields of every record, and the mean training pose (the baseline).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from kpt_tf import geometry
from kpt_tf.data import manifest, schema
from kpt_tf.data.damaged import naming_damaged_shards
from kpt_tf.data.records import records_subset, shard_files


def count_records(data_dir: str, split: str) -> int:
    """Number of records of a split: from `manifest.json` when it matches the shards, else by reading them."""
    files = shard_files(data_dir, split)
    content = manifest.read_manifest(data_dir)
    if content is not None:
        try:
            count = manifest.split_record_count(content, split, [os.path.basename(p) for p in files])
        except (AttributeError, TypeError):
            count = None
        if count is not None:
            return count
    return int(tf.data.TFRecordDataset(files).reduce(np.int64(0), lambda n, _: n + 1).numpy())


def split_people_count(data_dir: str, split: str) -> int | None:
    """How many people the converter read for a split, skipped ones included (the length of the annotation
    file's split, which MPII prediction files follow); None without a readable complete manifest."""
    content = manifest.read_manifest(data_dir)
    try:
        if not content.get(manifest.COMPLETE, False):
            return None
        return int(content[manifest.SPLITS][split][manifest.SPLIT_READ])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def record_people(data_dir, split: str, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """The person fields of every record of a split, file order, images left undecoded: `dataset_index` [N],
    `image_id` [N] (str), `center` [N, 2] and `scale` [N] (adjusted, 0-based source pixels), `person_index` [N]."""
    files = shard_files(data_dir, split)
    layout = manifest.records_layout(data_dir)
    ds = tf.data.TFRecordDataset(files).map(lambda s: schema.parse_example(s, decode_image=False, layout=layout),
                                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch_size)
    keys = {"dataset_index": "person/dataset_index", "image_id": "image/id", "center": "person/center",
            "scale": "person/scale", "person_index": "person/index"}
    parts: dict[str, list] = {k: [] for k in keys}
    with naming_damaged_shards(data_dir, split):
        for batch in ds:
            for key, feature in keys.items():
                parts[key].append(batch[feature].numpy())
    out = {k: (np.concatenate(v) if v else np.zeros((0, 2) if k == "center" else (0,))) for k, v in parts.items()}
    out["image_id"] = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in out["image_id"]], object)
    return out


def mean_training_pose(data_dir: str, subset, input_size: int = 256, split: str = "train") -> np.ndarray:
    """Mean [J, 2] position (model-input pixels) of annotated joints over the un-augmented training crops.

    The predict-the-mean-pose baseline. A joint annotated in no record gets the input centre. `subset` is read
    against the records' keypoint layout (`records.records_subset`).
    """
    subset = records_subset(subset, data_dir)
    indices = list(subset.indices)
    num_joints = len(subset.layout.joints)

    def joints_in_input(serialized):
        record = schema.parse_example(serialized, decode_image=False, layout=subset.layout)
        m = geometry.crop_to_input_affine(record["image/crop_size"], record["person/crop_margin"], input_size,
                                          backend="tf")
        return (geometry.apply_affine(m, record["joints/xy"], backend="tf"),
                tf.cast(record["joints/annotated"] > 0, tf.float64))

    ds = (tf.data.TFRecordDataset(shard_files(data_dir, split))
          .map(joints_in_input, num_parallel_calls=tf.data.AUTOTUNE).batch(1024))
    sums = np.zeros([num_joints, 2], np.float64)
    counts = np.zeros([num_joints], np.float64)
    for joints, annotated in ds.as_numpy_iterator():
        sums += np.einsum("bj,bjk->jk", annotated, joints.astype(np.float64))
        counts += annotated.sum(axis=0)
    centre = (input_size - 1) / 2.0
    mean = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centre)
    return mean[indices].astype(np.float32)

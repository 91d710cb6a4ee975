"""Reading person-crop records: a split's shard files, a joint subset read against the records' keypoint layout, and
records turned into model inputs, one at a time or a batch at once (kpt_tf.data.pipeline streams them; its
docstring states the rules of the transform: one affine, flip pairs swapped, weights)."""

from __future__ import annotations

import os

import tensorflow as tf

from kpt_tf import geometry
from kpt_tf.data import schema
from kpt_tf.data.augment import (
    BATCHED_WARPS,
    DEFAULT_WARP,
    AugmentConfig,
    make_batch_renderer,
    make_renderer,
    sample_augmentation,
)
from kpt_tf.data.manifest import records_layout
from kpt_tf.joints import JointSubset


def shard_files(data_dir: str, split: str) -> list[str]:
    """Sorted shard paths of a split; a clear error when there are none."""
    pattern = os.path.join(os.fspath(data_dir), schema.shard_pattern(split))
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        if not tf.io.gfile.isdir(os.fspath(data_dir)):
            raise FileNotFoundError(f"data dir {os.fspath(data_dir)!r} does not exist (expected the TFRecord "
                                    "directory written by data_prep.mpii_to_tfrecord)")
        present = sorted({os.path.basename(f).split("-")[0] for f in tf.io.gfile.glob(
            os.path.join(os.fspath(data_dir), "*.tfrecord"))})
        raise FileNotFoundError(f"no TFRecord shards for split {split!r} in {os.fspath(data_dir)!r} (looked for "
                                f"{schema.shard_pattern(split)}; splits present: {', '.join(present) or 'none'})")
    return files


def records_subset(spec, data_dir) -> JointSubset:
    """A joint subset (a spec such as `all-head`, or a JointSubset) read against the keypoint layout of the records
    in `data_dir` (`manifest.records_layout`); a subset of another layout, or an unknown joint, is refused naming
    the directory and its layout. Without a data directory (none given, or not there yet: `kpt_tf.train --dry_run`
    of a config whose records are still to be converted) the spec alone decides (`coco17:all`; no prefix: mpii16)."""
    if not os.fspath(data_dir or "") or not tf.io.gfile.isdir(os.fspath(data_dir)):
        return JointSubset.parse(spec)
    layout = records_layout(data_dir)
    try:
        return JointSubset.parse(spec, layout)
    except ValueError as e:
        raise ValueError(f"data dir {os.fspath(data_dir)} holds {layout.name} records ({len(layout.joints)} "
                         f"joints): {e}") from None


def config_subset(config) -> JointSubset:
    """A config's `joints` read against the keypoint layout of its records (`records_subset`): `all-head` on COCO
    records is COCO's limbs; `coco17:all` on MPII records is refused naming the data dir and both layouts. What
    every command that builds a network from a config (train, distill, transfer, the experiments) reads."""
    return records_subset(config.joints, config.data.get("dir", ""))


def person_transform(subset: JointSubset, input_size: int, augment: AugmentConfig | None, with_meta: bool,
                     warp: str = DEFAULT_WARP):
    """The per-record stage of make_dataset's stream: (serialized record, augmentation key) -> (pixels, joints,
    weights), or with_meta a dict (make_dataset's element fields); augment None: the un-augmented crop. The records
    hold every joint of `subset.layout` (`records_subset` reads a subset against them).

    For a warp applied per batch (`augment.make_batch_renderer`) the record's function only draws (-> the record
    and its draw: `serialized`, `cos`, `sin`, `scale`, `flip`, `colour`), and `batch_transform` parses and places
    the batch (affines, joints, pixels) after `batch`: the same numbers, bit for bit (tests/kpt_tf/data/
    test_pipeline.py), for a third of the per-record graph ops (BUILD_NOTES, input pipeline)."""
    drawn = _drawing(augment)
    if warp in BATCHED_WARPS:
        return tf.autograph.experimental.do_not_convert(drawn)
    place = _placing(subset, input_size, with_meta, make_renderer(input_size, warp))
    return tf.autograph.experimental.do_not_convert(lambda serialized, key: place(drawn(serialized, key)))


def batch_transform(subset: JointSubset, input_size: int, with_meta: bool, warp: str):
    """None for a warp applied per record; else a batch of `person_transform`'s elements -> make_dataset's batch."""
    if warp not in BATCHED_WARPS:
        return None
    return tf.autograph.experimental.do_not_convert(
        _placing(subset, input_size, with_meta, make_batch_renderer(input_size, warp)))


def _drawing(augment: AugmentConfig | None):
    """(serialized record, key) -> the record and its augmentation draw: what must be computed per record."""
    def drawn(serialized, key):
        if augment is not None:
            rotation, scale, flip, colour = sample_augmentation(key, augment)
        else:
            rotation, scale, flip, colour = 0.0, 1.0, tf.constant(False), tf.ones([3])
        # per record even when the rest is placed per batch: TF's vectorised Cos/Sin differ by an ulp
        cos, sin = geometry.rotation_terms(rotation, backend="tf")
        return {"serialized": serialized, "cos": cos, "sin": sin, "scale": tf.cast(scale, tf.float32), "flip": flip,
                "colour": tf.cast(colour, tf.float32)}

    return drawn


def _placing(subset: JointSubset, input_size: int, with_meta: bool, render):
    """`_drawing`'s record and draw (one, or a batch of them: every op broadcasts over a leading batch axis) ->
    (pixels, joints, weights), or with_meta make_dataset's dict; `render` the warp's (per record or per batch)."""
    # The subset's joints read from the layout's: out[i] = in[indices[i]], or mirrored (a mirrored right wrist is
    # where the left wrist channel must point) in[partner[indices[i]]]: one gather per field either way.
    indices = tf.constant(subset.indices, tf.int32)
    mirrored_indices = tf.constant([subset.layout.flip_partners[i] for i in subset.indices], tf.int32)

    def place(f):
        record = schema.parse_example(f["serialized"], decode_image=False, layout=subset.layout)
        crop_to_input = geometry.crop_to_input_affine(
            record["image/crop_size"], record["person/crop_margin"], input_size, scale=f["scale"], flip=f["flip"],
            backend="tf", terms=(f["cos"], f["sin"]))
        pixels = render(record["image/encoded"], crop_to_input, f["colour"], record["image/id"])
        batch_dims = len(f["flip"].shape)
        order = tf.where(f["flip"][..., None], mirrored_indices, indices)
        joints = tf.gather(geometry.apply_affine_batch(crop_to_input, record["joints/xy"], backend="tf"), order,
                           batch_dims=batch_dims)
        annotated = tf.gather(tf.cast(record["joints/annotated"] > 0, tf.float32), order, batch_dims=batch_dims)
        if not with_meta:
            return pixels, joints, annotated
        visible = tf.cast(record["joints/visible"] > 0, tf.float32)
        return {
            "image": pixels,
            "joints": joints,
            "weights": annotated,
            "input_to_image": geometry.compose_affine(
                record["crop/to_image"], geometry.invert_affine(crop_to_input, backend="tf"), backend="tf"),
            "head_box": record["head/box"],
            "has_head_box": record["head/has_box"],
            "dataset_index": record["person/dataset_index"],
            "image_id": record["image/id"],
            "annotated": annotated,
            # annotated and not occluded (the records' flag; evaluation splits PCKh by it)
            "visible": annotated * tf.gather(visible, order, batch_dims=batch_dims),
        }

    # Every `if` above is on Python values: the functions need no AutoGraph conversion, which cost ~1 s of tracing
    # per training run with the helpers they call (measured with the suite's tiny runs, BUILD_NOTES, Tests).
    return place

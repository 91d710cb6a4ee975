"""The TFRecord schema of a person crop: the one module that both writes and parses records.

A record holds one annotated person: a JPEG crop centred on the (adjusted) person box, covering
`margin` person boxes so that augmentation (rotation, zoom-out) has real pixels to draw from, every joint of the
data set's keypoint layout in crop pixels (MPII's 16, COCO's 17), the annotated and visible flags
(CONVENTIONS.md: they differ), and what is needed to go back to the source image for evaluation: the crop->image
affine, centre, scale, head box. All the layout's joints are always stored; a model's joint subset is selected in
the input pipeline. Which layout a record directory holds is its manifest's (`manifest.records_layout`); the
features differ only in the joints' lengths, so MPII records are what they were before layouts existed.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from kpt_tf.joints import MPII16
from kpt_tf.layouts import KeypointLayout

FeatureTable = dict[str, tuple[tf.DType, int | None]]


@functools.cache
def features(layout: KeypointLayout = MPII16) -> FeatureTable:
    """name -> (dtype, length or None for scalars) of a layout's records. One table drives writing, parsing and
    the tests; its order is the order the features are written in."""
    num_joints = len(layout.joints)
    return {
        "image/encoded": (tf.string, None),          # JPEG of the crop, crop_size x crop_size x 3
        "image/crop_size": (tf.int64, None),
        "image/id": (tf.string, None),               # source image file name
        "image/original_size": (tf.int64, 2),        # (height, width) of the source image
        "person/index": (tf.int64, None),            # person index within its source image
        "person/dataset_index": (tf.int64, None),    # position among the split's people in the source file
        "person/center": (tf.float32, 2),            # adjusted centre, 0-based source-image pixels
        "person/scale": (tf.float32, None),          # adjusted scale: person box side = 200 * scale px
        "person/crop_margin": (tf.float32, None),    # crop side = margin * person box side
        "joints/xy": (tf.float32, 2 * num_joints),   # crop pixels, 0-based, (x, y) interleaved
        "joints/annotated": (tf.int64, num_joints),  # 1 = annotated (the only flag evaluation uses)
        "joints/visible": (tf.int64, num_joints),    # 1 = annotated and not occluded
        "crop/to_image": (tf.float32, 6),            # 2x3 affine, crop pixels -> source-image pixels
        "head/box": (tf.float32, 4),                 # x1, y1, x2, y2 in source-image pixels (0 if unknown)
        "head/has_box": (tf.int64, None),
    }


# MPII's records (the converter's and the embedded data set's).
FEATURES: FeatureTable = features(MPII16)


def _feature(dtype: tf.DType, value) -> tf.train.Feature:
    if dtype == tf.string:
        value = value if isinstance(value, (list, tuple)) else [value]
        return tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[v.encode() if isinstance(v, str) else bytes(v) for v in value]))
    flat = np.asarray(value).reshape(-1)
    if dtype == tf.int64:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in flat]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in flat]))


def encode_example(record: dict, layout: KeypointLayout = MPII16) -> bytes:
    """A dict with every key of `features(layout)` (numpy or python values) -> serialized tf.train.Example."""
    table = features(layout)
    missing = sorted(set(table) - set(record))
    extra = sorted(set(record) - set(table))
    if missing or extra:
        raise ValueError(f"record does not match the schema: missing {missing}, unknown {extra}")
    encoded = {}
    for name, (dtype, length) in table.items():
        value = record[name]
        if length is not None and np.asarray(value).size != length:
            raise ValueError(f"record feature {name!r} has {np.asarray(value).size} values, expected {length} "
                             f"(layout {layout.name}, {len(layout.joints)} joints)")
        encoded[name] = _feature(dtype, value)
    # deterministic: protobuf otherwise writes the feature map in an order that varies between processes
    # (string hash seeds), and identical inputs must give byte-identical shards.
    return tf.train.Example(features=tf.train.Features(feature=encoded)).SerializeToString(deterministic=True)


@functools.cache
def _parse_spec(layout: KeypointLayout) -> dict:
    return {name: tf.io.FixedLenFeature([] if length is None else [length], dtype)
            for name, (dtype, length) in features(layout).items()}


def parse_example(serialized: tf.Tensor, decode_image: bool = True, layout: KeypointLayout = MPII16) -> dict:
    """Serialized example of a `layout` record -> dict of tensors; joints reshaped to [J, 2], the affine to
    [2, 3]. A vector of them [B] (one op for the batch; not with decode_image) -> the same with a leading B."""
    serialized = tf.convert_to_tensor(serialized, tf.string)
    if serialized.shape.rank == 1:
        if decode_image:
            raise ValueError("parse_example: a batch of records is parsed without its images (decode_crop each)")
        parsed = tf.io.parse_example(serialized, _parse_spec(layout))
        lead = [-1]
    else:
        parsed = tf.io.parse_single_example(serialized, _parse_spec(layout))
        lead = []
    parsed["joints/xy"] = tf.reshape(parsed["joints/xy"], lead + [len(layout.joints), 2])
    parsed["crop/to_image"] = tf.reshape(parsed["crop/to_image"], lead + [2, 3])
    if decode_image:
        parsed["image"] = decode_crop(parsed["image/encoded"])
    return parsed


def decode_crop(encoded: tf.Tensor) -> tf.Tensor:
    """A stored crop's JPEG -> uint8 RGB [H, W, 3], with TF's default (fast) DCT. OpenCV and PIL use libjpeg's
    accurate DCT, up to 4 grey levels away (1.0 on average); switching to it moved pixel-exact tests (BUILD_NOTES,
    input pipeline)."""
    return tf.io.decode_jpeg(encoded, channels=3)


def parse_example_numpy(serialized: bytes, layout: KeypointLayout = MPII16) -> dict:
    """Eager/numpy view of one record (tests, tools)."""
    return {k: (v.numpy() if hasattr(v, "numpy") else v)
            for k, v in parse_example(tf.constant(serialized), layout=layout).items()}


def shard_name(split: str, shard: int, num_shards: int) -> str:
    return f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord"


def shard_pattern(split: str) -> str:
    return f"{split}-*-of-*.tfrecord"

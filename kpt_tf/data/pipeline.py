"""tf.data input pipeline: person-crop TFRecords -> augmented model inputs, joints and weights.

One affine per sample maps the stored crop to the model input: the input square covers exactly one person
box (the crop covers `person/crop_margin` boxes around the same centre), then rotation, scale and a
horizontal flip about the input centre. The image is resampled once with that matrix (bilinear, fill 0:
an XLA-compiled sampler equal to ImageProjectiveTransformV3, see `warp_image`) and the joints are moved
with the same matrix, so image and labels cannot drift apart.

Flip: the 16 stored joints are mirrored and ALL 16 flip pairs swapped before the model's joint subset is
selected, so every subset (even `left`) trains with flip augmentation.

Weights = "annotated" (CONVENTIONS.md: occluded joints train too). Joints that leave the input after
augmentation keep weight 1 here: the one rule for them is the codec's (HeatmapCodec.encode zeroes a joint
whose 3-sigma window lies completely off the heatmap, as HRNet/bearpaw do), applied where the targets are
rendered, inside the compiled train step. Heatmaps are not rendered here: the wire carries uint8 images
[B, S, S, 3], float32 joints [B, J, 2] (model-input pixels) and float32 weights [B, J].

Randomness uses stateless ops keyed per element by `tf.data.Dataset.random(seed,
rerandomize_each_iteration=True)`, zipped to the record stream after shuffle/repeat: the same seed gives
the same batches (with deterministic=True), and each epoch (repeat, or a new iteration of the dataset)
draws fresh, still reproducible, augmentations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os

import numpy as np
import tensorflow as tf

from kpt_tf import geometry
from kpt_tf.data import manifest, schema
from kpt_tf.joints import NUM_JOINTS, JointSubset, full_flip_permutation

AUTOTUNE = tf.data.AUTOTUNE
_FULL_FLIP = tuple(full_flip_permutation())


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (bearpaw/pytorch-pose ranges, sampled uniformly).

    rotation: uniform in +-rotation_deg (counter-clockwise positive), applied with rotation_prob.
    scale: factor on the person box side, uniform in [scale_min, scale_max]; > 1 shows more context
    (the person looks smaller). flip: horizontal, with flip_prob, when `flip` is on. colour: each RGB
    channel multiplied by a factor uniform in [color_min, color_max], clipped to 0..255.
    (bearpaw and HRNet draw rotation and scale from clipped normals instead; uniform gives the stated
    ranges exactly.)
    """

    rotation_deg: float = 30.0
    rotation_prob: float = 0.6
    scale_min: float = 0.75
    scale_max: float = 1.25
    flip: bool = True
    flip_prob: float = 0.5
    color_min: float = 0.8
    color_max: float = 1.2

    def __post_init__(self):
        problems = []
        if self.rotation_deg < 0:
            problems.append(f"rotation_deg {self.rotation_deg} < 0")
        for name in ("rotation_prob", "flip_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} {getattr(self, name)} not in [0, 1]")
        if not 0 < self.scale_min <= self.scale_max:
            problems.append(f"scale range [{self.scale_min}, {self.scale_max}] must satisfy 0 < min <= max")
        if not 0 <= self.color_min <= self.color_max:
            problems.append(f"colour range [{self.color_min}, {self.color_max}] must satisfy 0 <= min <= max")
        if problems:
            raise ValueError("AugmentConfig: " + "; ".join(problems))

    @classmethod
    def from_config(cls, config) -> "AugmentConfig":
        """From a dict / ml_collections ConfigDict with (a subset of) the field names."""
        items = dict(config.items() if hasattr(config, "items") else config)
        unknown = sorted(set(items) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"AugmentConfig: unknown fields {unknown}")
        return cls(**items)

    def get_config(self) -> dict:
        return dataclasses.asdict(self)


def warp_image(image, input_to_source, output_size: int):
    """Bilinear resampling of `image` [H, W, C] onto an output square, constant fill 0, float32 result.

    Output pixel p shows source pixel M p, M = `input_to_source` (2x3, the inverse of the joint transform).
    A neighbour outside the image reads 0, so borders blend into the fill exactly as
    ImageProjectiveTransformV3(BILINEAR, CONSTANT 0) does (`projective_warp`; they agree to 1e-3 grey
    levels). Written with gathers so that XLA fuses it: 0.4 ms CPU per 256 px output instead of the raw
    op's 1.4 ms (measured on 2 cores), which made the warp, not JPEG decoding, the pipeline's bottleneck.
    """
    image = tf.convert_to_tensor(image)
    m = tf.cast(input_to_source, tf.float32)
    shape = tf.shape(image)
    height, width, channels = shape[0], shape[1], shape[2]
    padded = tf.reshape(tf.pad(image, [[1, 1], [1, 1], [0, 0]]), [-1, channels])
    grid = tf.range(output_size, dtype=tf.float32)
    gx = tf.tile(grid[None, :], [output_size, 1])
    gy = tf.tile(grid[:, None], [1, output_size])
    # Source coordinates in the padded image (+1: the zero border).
    sx = tf.reshape(m[0, 0] * gx + m[0, 1] * gy + m[0, 2] + 1.0, [-1])
    sy = tf.reshape(m[1, 0] * gx + m[1, 1] * gy + m[1, 2] + 1.0, [-1])
    # Far-away coordinates are clamped before the int cast; anything beyond the border reads zeros.
    sx = tf.clip_by_value(sx, -1.0, tf.cast(width, tf.float32) + 2.0)
    sy = tf.clip_by_value(sy, -1.0, tf.cast(height, tf.float32) + 2.0)
    x0f, y0f = tf.floor(sx), tf.floor(sy)
    fx, fy = (sx - x0f)[:, None], (sy - y0f)[:, None]
    x0, y0 = tf.cast(x0f, tf.int32), tf.cast(y0f, tf.int32)
    x0, x1 = tf.clip_by_value(x0, 0, width + 1), tf.clip_by_value(x0 + 1, 0, width + 1)
    y0, y1 = tf.clip_by_value(y0, 0, height + 1), tf.clip_by_value(y0 + 1, 0, height + 1)
    row = width + 2

    def pixel(y, x):
        return tf.cast(tf.gather(padded, y * row + x), tf.float32)

    top = pixel(y0, x0) * (1.0 - fx) + pixel(y0, x1) * fx
    bottom = pixel(y1, x0) * (1.0 - fx) + pixel(y1, x1) * fx
    return tf.reshape(top * (1.0 - fy) + bottom * fy, [output_size, output_size, channels])


def projective_warp(image, input_to_source, output_size: int):
    """`warp_image` with tf.raw_ops.ImageProjectiveTransformV3 (the reference; slower on CPU)."""
    transform = tf.concat([tf.reshape(tf.cast(input_to_source, tf.float32), [6]), tf.zeros([2], tf.float32)], 0)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, tf.float32)[None], transforms=transform[None],
        output_shape=tf.constant([output_size, output_size], tf.int32), fill_value=tf.constant(0.0),
        interpolation="BILINEAR", fill_mode="CONSTANT")[0]


WARPS = ("xla", "projective_transform")


@functools.lru_cache(maxsize=None)
def _make_renderer(input_size: int, warp: str):
    """(crop uint8, input->crop affine, colour [3]) -> model input uint8 [S, S, 3]: one warp, colour, clip."""
    if warp not in WARPS:
        raise ValueError(f"warp {warp!r}: expected one of {', '.join(WARPS)}")

    def render(crop, input_to_crop, colour):
        sampler = warp_image if warp == "xla" else projective_warp
        pixels = sampler(crop, input_to_crop, input_size) * colour
        return tf.cast(tf.round(tf.clip_by_value(pixels, 0.0, 255.0)), tf.uint8)

    # XLA fuses the sampler's elementwise work into one loop; it compiles once per crop shape.
    return tf.function(render, jit_compile=True) if warp == "xla" else render


# --- per-record transform --------------------------------------------------------------------------

def _sample_augmentation(key, augment: AugmentConfig):
    """Stateless draw of (rotation_deg, scale, flip, colour[3]) from an int64 key."""
    seed = tf.stack([tf.cast(key, tf.int64), tf.constant(0x5EED, tf.int64)])
    u = tf.random.stateless_uniform([7], seed=seed, dtype=tf.float32)
    rotation = tf.where(u[0] < augment.rotation_prob, (2.0 * u[1] - 1.0) * augment.rotation_deg, 0.0)
    scale = augment.scale_min + u[2] * (augment.scale_max - augment.scale_min)
    flip = (u[3] < augment.flip_prob) if augment.flip else tf.constant(False)
    colour = augment.color_min + u[4:7] * (augment.color_max - augment.color_min)
    return rotation, scale, flip, colour


def _make_transform(subset: JointSubset, input_size: int, augment: AugmentConfig | None, with_meta: bool,
                    warp: str = "xla"):
    render = _make_renderer(input_size, warp)
    indices = tf.constant(subset.indices, tf.int32)
    full_flip = tf.constant(_FULL_FLIP, tf.int32)

    def transform(serialized, key):
        record = schema.parse_example(serialized, decode_image=False)
        image = tf.io.decode_jpeg(record["image/encoded"], channels=3)
        crop_size = record["image/crop_size"]
        margin = record["person/crop_margin"]
        if augment is not None:
            rotation, scale, flip, colour = _sample_augmentation(key, augment)
        else:
            rotation, scale, flip, colour = 0.0, 1.0, tf.constant(False), None
        crop_to_input = geometry.crop_to_input_affine(crop_size, margin, input_size, rotation, scale, flip,
                                                      backend="tf")
        input_to_crop = geometry.invert_affine(crop_to_input, backend="tf")

        pixels = render(image, input_to_crop, tf.ones([3]) if colour is None else colour)

        joints = geometry.apply_affine(crop_to_input, record["joints/xy"], backend="tf")  # [16, 2]
        annotated = tf.cast(record["joints/annotated"] > 0, tf.float32)          # [16]
        # A mirrored right wrist is where the left wrist channel must point: swap every pair, then select.
        joints = tf.where(flip, tf.gather(joints, full_flip), joints)
        annotated = tf.where(flip, tf.gather(annotated, full_flip), annotated)
        joints = tf.gather(joints, indices)
        annotated = tf.gather(annotated, indices)

        if not with_meta:
            return pixels, joints, annotated
        visible = tf.cast(record["joints/visible"] > 0, tf.float32)
        return {
            "image": pixels,
            "joints": joints,
            "weights": annotated,
            "input_to_image": geometry.compose_affine(record["crop/to_image"], input_to_crop, backend="tf"),
            "head_box": record["head/box"],
            "has_head_box": record["head/has_box"],
            "dataset_index": record["person/dataset_index"],
            "image_id": record["image/id"],
            "annotated": annotated,
            # annotated and not occluded (the records' flag; evaluation splits PCKh by it)
            "visible": annotated * tf.gather(tf.where(flip, tf.gather(visible, full_flip), visible), indices),
        }

    return transform


# --- datasets --------------------------------------------------------------------------------------

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


def _read_until_damage(path: str) -> tuple[int, str | None]:
    """(records read, the first read error) of one shard (TFRecord length and data CRCs); error None when the
    shard reads whole. The records counted are those before the error: the ones a `skip_damaged` pipeline uses."""
    records = 0
    try:
        for _ in tf.data.TFRecordDataset(path):
            records += 1
    except tf.errors.DataLossError as e:
        return records, e.message.splitlines()[0]
    return records, None


def _damaged(path: str) -> str | None:
    return _read_until_damage(path)[1]


@contextlib.contextmanager
def naming_damaged_shards(data_dir, *splits):
    """Turns tf.data's `DataLossError: corrupted record at N` (which names no file) into a ValueError naming
    the damaged shard(s) of `splits`, found by re-reading each (only after the error)."""
    try:
        yield
    except tf.errors.DataLossError as e:
        damaged = [(f, why) for split in splits for f in shard_files(data_dir, split) if (why := _damaged(f))]
        where = "; ".join(f"{f}: {why}" for f, why in damaged) or f"a shard in {os.fspath(data_dir)}: {e.message}"
        raise ValueError(f"damaged TFRecord shard ({where}); rerun data_prep.mpii_to_tfrecord with the same "
                         "flags: it checks every shard's sha256 against manifest.json and redoes the damaged "
                         "one") from None


def converter_manifest(data_dir) -> dict | None:
    """The converter's manifest.json of `data_dir`, or None when there is none or it is not JSON."""
    path = os.path.join(os.fspath(data_dir), manifest.MANIFEST_NAME)
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)
    except json.JSONDecodeError:
        return None


def record_people(data_dir, split: str, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """The person fields of every record of a split, file order, images left undecoded: `dataset_index` [N],
    `image_id` [N] (str), `center` [N, 2] and `scale` [N] (adjusted, 0-based source pixels), `person_index` [N]."""
    files = shard_files(data_dir, split)
    ds = tf.data.TFRecordDataset(files).map(lambda s: schema.parse_example(s, decode_image=False),
                                            num_parallel_calls=AUTOTUNE, deterministic=True).batch(batch_size)
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


def damaged_records(data_dir, split: str) -> list[dict]:
    """The shards of `split` that do not read whole, for `skip_damaged` pipelines:
    [{"file", "error", "readable", "lost"}] -- `lost` is the records past the first damaged one (a TFRecord file
    has no marker to resynchronise on, so the rest of a damaged shard is lost), None when no manifest says how
    many the shard holds. Shards whose sha256 equals the manifest's are only hashed, not parsed."""
    content = converter_manifest(data_dir)
    entries = content.get(manifest.SHARDS, []) if isinstance(content, dict) else []
    by_name = {e[manifest.SHARD_FILE]: e for e in entries if isinstance(e, dict) and manifest.SHARD_FILE in e}
    damaged = []
    for file in shard_files(data_dir, split):
        entry = by_name.get(os.path.basename(file), {})
        if entry.get(manifest.SHARD_SHA256) and manifest.sha256_of_file(file) == entry[manifest.SHARD_SHA256]:
            continue
        readable, error = _read_until_damage(file)
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


def make_dataset(data_dir: str, split: str, subset, batch_size: int, training: bool, input_size: int = 256,
                 augment: AugmentConfig | None = None, seed: int | None = None, deterministic: bool = False,
                 repeat: bool | None = None, drop_remainder: bool | None = None, shuffle_buffer: int = 2048,
                 with_meta: bool = False, input_context: tf.distribute.InputContext | None = None,
                 warp: str = "xla", skip_damaged: bool = False) -> tf.data.Dataset:
    """Batches of person crops from `{data_dir}/{split}-*-of-*.tfrecord`.

    training=True: shuffled (files and records), repeated unless repeat=False, augmented with `augment`
    (None = no augmentation), remainder dropped unless drop_remainder=False.
    training=False (evaluation): no augmentation, no shuffle, file order, one pass, remainder kept.
    Elements: (images uint8 [B,S,S,3], {"joints" [B,J,2], "weights" [B,J]}) or, with_meta=True, one dict
    with also input_to_image [B,2,3] (model-input px -> source-image px), head_box [B,4], has_head_box,
    dataset_index, image_id, annotated [B,J].
    `seed` + deterministic=True: reproducible batches. Under tf.distribute the dataset is auto-sharded by
    DATA; with `input_context` (distribute_datasets_from_function, used under several workers) it shards
    itself and `batch_size` is the global batch. `warp`: "xla" (XLA-compiled bilinear sampler, default) or
    "projective_transform" (tf.raw_ops.ImageProjectiveTransformV3); same pixels, the first is about 3x cheaper on CPU.
    skip_damaged: a shard's records from its first damaged one on are skipped (`damaged_records` counts them)
    instead of stopping with DataLossError.
    """
    subset = JointSubset.parse(subset)
    if batch_size <= 0:
        raise ValueError(f"make_dataset: batch_size must be positive, got {batch_size}")
    files = shard_files(data_dir, split)
    repeat = training if repeat is None else repeat
    drop_remainder = training if drop_remainder is None else drop_remainder
    augment = augment if training else None
    # Evaluation order must not depend on thread timing.
    ordered = deterministic or not training

    # Separate seeds for the file order, the record order and the augmentation draws.
    file_seed, record_seed, key_seed = (None, None, None) if seed is None else (seed, seed + 1, seed + 2)

    ds = tf.data.Dataset.list_files(os.path.join(os.fspath(data_dir), schema.shard_pattern(split)),
                                    shuffle=False)
    if training:
        ds = ds.shuffle(len(files), seed=file_seed, reshuffle_each_iteration=True)
    def records(file):
        # ignore_errors ends a shard at its first damaged record: the reader cannot resynchronise past it.
        return tf.data.TFRecordDataset(file).ignore_errors() if skip_damaged else tf.data.TFRecordDataset(file)

    ds = ds.interleave(records,
                       cycle_length=min(len(files), 8) if training else 1,
                       num_parallel_calls=AUTOTUNE, deterministic=ordered)
    if training and shuffle_buffer > 1:
        ds = ds.shuffle(shuffle_buffer, seed=record_seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    # One random int64 per element; the stateless augmentation draws are keyed on it.
    keys = tf.data.Dataset.random(seed=key_seed, rerandomize_each_iteration=True)
    ds = tf.data.Dataset.zip((ds, keys))
    if input_context is not None:
        # distribute_datasets_from_function: this pipeline feeds per-replica batches, and with several input
        # pipelines (workers) takes its block of each global batch of the one stream all of them build alike
        # (same seeds), records and augmentation keys together, before decoding: the workers' batches are
        # disjoint, and worker w's is replica w's share of the same global batch on one machine (with
        # train.deterministic, exactly). An every-N-th-element shard gave the same global batches split
        # differently, and the weights drifted 1-1.5 % from the one-machine run's (BUILD_NOTES, Multi-worker).
        batch_size = input_context.get_per_replica_batch_size(batch_size)
        workers, worker = input_context.num_input_pipelines, input_context.input_pipeline_id
        if workers > 1:
            block = slice(worker * batch_size, (worker + 1) * batch_size)
            ds = ds.batch(batch_size * workers, drop_remainder=True).map(
                lambda record, key: (record[block], key[block])).unbatch()
    ds = ds.map(_make_transform(subset, input_size, augment, with_meta, warp),
                num_parallel_calls=AUTOTUNE, deterministic=ordered)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if not with_meta:
        ds = ds.map(lambda images, joints, weights: (images, {"joints": joints, "weights": weights}))
    ds = ds.prefetch(AUTOTUNE)

    options = tf.data.Options()
    options.deterministic = ordered
    # FILE sharding needs at least one shard file per worker; DATA works with any number of files.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


# --- split statistics ------------------------------------------------------------------------------

def count_records(data_dir: str, split: str) -> int:
    """Number of records of a split: from `manifest.json` when it matches the shards, else by reading them."""
    files = shard_files(data_dir, split)
    content = converter_manifest(data_dir)
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
    manifest_path = os.path.join(os.fspath(data_dir), manifest.MANIFEST_NAME)
    try:
        with tf.io.gfile.GFile(manifest_path) as f:
            content = json.load(f)
        if not content.get(manifest.COMPLETE, False):
            return None
        return int(content[manifest.SPLITS][split][manifest.SPLIT_READ])
    except (tf.errors.NotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def mean_training_pose(data_dir: str, subset, input_size: int = 256, split: str = "train") -> np.ndarray:
    """Mean [J, 2] position (model-input pixels) of annotated joints over the un-augmented training crops.

    The predict-the-mean-pose baseline. A joint annotated in no record gets the input centre.
    """
    subset = JointSubset.parse(subset)
    indices = list(subset.indices)

    def joints_in_input(serialized):
        record = schema.parse_example(serialized, decode_image=False)
        m = geometry.crop_to_input_affine(record["image/crop_size"], record["person/crop_margin"], input_size,
                                          backend="tf")
        return (geometry.apply_affine(m, record["joints/xy"], backend="tf"),
                tf.cast(record["joints/annotated"] > 0, tf.float64))

    ds = (tf.data.TFRecordDataset(shard_files(data_dir, split))
          .map(joints_in_input, num_parallel_calls=AUTOTUNE).batch(1024))
    sums = np.zeros([NUM_JOINTS, 2], np.float64)
    counts = np.zeros([NUM_JOINTS], np.float64)
    for joints, annotated in ds.as_numpy_iterator():
        sums += np.einsum("bj,bjk->jk", annotated, joints.astype(np.float64))
        counts += annotated.sum(axis=0)
    centre = (input_size - 1) / 2.0
    mean = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centre)
    return mean[indices].astype(np.float32)

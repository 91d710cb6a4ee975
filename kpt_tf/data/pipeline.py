"""tf.data input pipeline: person-crop TFRecords -> augmented model inputs, joints and weights.

One affine per sample maps the stored crop to the model input: the input square covers exactly one person
box (the crop covers `person/crop_margin` boxes around the same centre), then rotation, scale and a
horizontal flip about the input centre. The image is resampled once with that matrix (bilinear, fill 0: by
default an XLA-compiled sampler equal to ImageProjectiveTransformV3, `augment.warp_image`; the training stream's
default is OpenCV per batch, `augment.TRAINING_WARP`; `augment.WARPS`) and the joints are moved with the same
matrix, so image and labels cannot drift apart.

Flip: all the stored joints (every joint of the records' keypoint layout) are mirrored and all the layout's flip
pairs swapped before the model's joint subset is selected, so every subset (even `left`) trains with flip
augmentation.

Layout: the subset is read against the keypoint layout the records' manifest names (`records.records_subset`): on
COCO records `all-head` is COCO's 12 limb joints, and a subset of another layout (`coco17:all` on MPII records) is
refused naming the data dir and both layouts.

Weights = "annotated" (CONVENTIONS.md: occluded joints train too). Joints that leave the input after
augmentation keep weight 1 here: the one rule for them is the codec's (HeatmapCodec.encode zeroes a joint
whose 3-sigma window lies completely off the heatmap, as HRNet/bearpaw do), applied where the targets are
rendered, inside the compiled train step. Heatmaps are not rendered here: the wire carries uint8 images
[B, S, S, 3], float32 joints [B, J, 2] (model-input pixels) and float32 weights [B, J].

Randomness uses stateless ops keyed per element by `tf.data.Dataset.random(seed,
rerandomize_each_iteration=True)`, zipped to the record stream after shuffle/repeat: the same seed gives
the same batches (with deterministic=True), and each epoch (repeat, or a new iteration of the dataset)
draws fresh, still reproducible, augmentations.

The pieces, each in its own module of kpt_tf.data: `augment` (the ranges, the draws, the warp), `records` (a split's
shards, one record decoded and transformed), `damaged` (damaged shards named, skipped and counted), `splits` (what a
split holds: record and people counts, person fields, the mean pose). This module streams them: `make_dataset`.
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow as tf

from kpt_tf.data import schema
from kpt_tf.data.augment import DEFAULT_WARP, AugmentConfig
from kpt_tf.data.records import batch_transform, person_transform, records_subset, shard_files
from kpt_tf.joints import JointSubset

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class StreamOptions:
    """How `make_dataset` streams a split.

    training=True: shuffled (files and records), repeated unless repeat=False, augmented with `augment`
    (None = no augmentation), remainder dropped unless drop_remainder=False.
    training=False (evaluation): no augmentation, no shuffle, file order, one pass, remainder kept.
    `seed` + deterministic=True: reproducible batches. with_meta: each element is one dict with the evaluation
    fields too (`make_dataset`). `warp`: "xla" (an XLA-compiled bilinear sampler per record, default), "cv2"
    (OpenCV decodes and warps once per batch: the least CPU; the training stream's, `augment.TRAINING_WARP`) or
    "projective_transform" (tf.raw_ops.ImageProjectiveTransformV3); the same joints, pixels within a few grey
    levels (`augment.WARPS`).
    skip_damaged: a shard's records from its first damaged one on are skipped (`damaged.damaged_records` counts
    them) instead of stopping with DataLossError.
    """

    batch_size: int
    training: bool
    input_size: int = 256
    augment: AugmentConfig | None = None
    seed: int | None = None
    deterministic: bool = False
    repeat: bool | None = None            # None: repeat when training
    drop_remainder: bool | None = None    # None: drop when training
    shuffle_buffer: int = 2048
    with_meta: bool = False
    warp: str = DEFAULT_WARP
    skip_damaged: bool = False

    def __post_init__(self):
        if self.batch_size <= 0:
            raise ValueError(f"make_dataset: batch_size must be positive, got {self.batch_size}")

    @property
    def repeats(self) -> bool:
        return self.training if self.repeat is None else self.repeat

    @property
    def drops_remainder(self) -> bool:
        return self.training if self.drop_remainder is None else self.drop_remainder

    @property
    def ordered(self) -> bool:
        """Elements in a fixed order: with deterministic=True, and always in evaluation (whose order must not
        depend on thread timing)."""
        return self.deterministic or not self.training

    @property
    def seeds(self) -> tuple:
        """Separate seeds for the file order, the record order and the augmentation draws."""
        return (None, None, None) if self.seed is None else (self.seed, self.seed + 1, self.seed + 2)


def make_dataset(data_dir: str, split: str, subset, options: StreamOptions,
                 input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
    """Batches of person crops from `{data_dir}/{split}-*-of-*.tfrecord`, streamed as `options` say.

    Elements: (images uint8 [B,S,S,3], {"joints" [B,J,2], "weights" [B,J]}) or, with_meta=True, one dict
    with also input_to_image [B,2,3] (model-input px -> source-image px), head_box [B,4], has_head_box,
    dataset_index, image_id, annotated [B,J], visible [B,J].
    Under tf.distribute the dataset is auto-sharded by DATA; with `input_context` (distribute_datasets_from_function,
    used under several workers) it shards itself and `options.batch_size` is the global batch.
    `subset` (a spec or a JointSubset) is read against the records' keypoint layout (`records.records_subset`).
    """
    subset = records_subset(subset, data_dir)
    files = shard_files(data_dir, split)
    ds = _with_augmentation_keys(_serialized_records(data_dir, split, len(files), options), options)
    batch_size = options.batch_size
    if input_context is not None:
        ds, batch_size = _input_pipeline_share(ds, batch_size, input_context)
    return _decoded_batches(ds, subset, batch_size, options).with_options(_tf_data_options(options.ordered))


def _serialized_records(data_dir, split: str, num_files: int, options: StreamOptions) -> tf.data.Dataset:
    """The split's serialized records: training shuffles the files and the records; repeated per `options`."""
    file_seed, record_seed, _ = options.seeds
    ds = tf.data.Dataset.list_files(os.path.join(os.fspath(data_dir), schema.shard_pattern(split)),
                                    shuffle=False)
    if options.training:
        ds = ds.shuffle(num_files, seed=file_seed, reshuffle_each_iteration=True)

    def records(file):
        # ignore_errors ends a shard at its first damaged record: the reader cannot resynchronise past it.
        return tf.data.TFRecordDataset(file).ignore_errors() if options.skip_damaged else tf.data.TFRecordDataset(file)

    ds = ds.interleave(records,
                       cycle_length=min(num_files, 8) if options.training else 1,
                       num_parallel_calls=AUTOTUNE, deterministic=options.ordered)
    if options.training and options.shuffle_buffer > 1:
        ds = ds.shuffle(options.shuffle_buffer, seed=record_seed, reshuffle_each_iteration=True)
    if options.repeats:
        ds = ds.repeat()
    return ds


def _with_augmentation_keys(ds: tf.data.Dataset, options: StreamOptions) -> tf.data.Dataset:
    """(record, key): one random int64 per element; the stateless augmentation draws are keyed on it."""
    keys = tf.data.Dataset.random(seed=options.seeds[2], rerandomize_each_iteration=True)
    return tf.data.Dataset.zip((ds, keys))


def _input_pipeline_share(ds: tf.data.Dataset, batch_size: int, input_context: tf.distribute.InputContext):
    """-> (this input pipeline's elements, its per-replica batch size) under distribute_datasets_from_function.

    This pipeline feeds per-replica batches, and with several input pipelines (workers) takes its block of each
    global batch of the one stream all of them build alike (same seeds), records and augmentation keys together,
    before decoding: the workers' batches are disjoint, and worker w's is replica w's share of the same global
    batch on one machine (with train.deterministic, exactly). An every-N-th-element shard gave the same global
    batches split differently, and the weights drifted 1-1.5 % from the one-machine run's (BUILD_NOTES,
    Multi-worker)."""
    batch_size = input_context.get_per_replica_batch_size(batch_size)
    workers, worker = input_context.num_input_pipelines, input_context.input_pipeline_id
    if workers > 1:
        block = slice(worker * batch_size, (worker + 1) * batch_size)
        ds = ds.batch(batch_size * workers, drop_remainder=True).map(
            lambda record, key: (record[block], key[block])).unbatch()
    return ds, batch_size


def _decoded_batches(ds: tf.data.Dataset, subset: JointSubset, batch_size: int,
                     options: StreamOptions) -> tf.data.Dataset:
    """(record, key) elements -> the batches `make_dataset` yields (augmented only when training)."""
    augment = options.augment if options.training else None
    ds = ds.map(person_transform(subset, options.input_size, augment, options.with_meta, options.warp),
                num_parallel_calls=AUTOTUNE, deterministic=options.ordered)
    ds = ds.batch(batch_size, drop_remainder=options.drops_remainder)
    placed = batch_transform(subset, options.input_size, options.with_meta, options.warp)
    if placed is not None:
        ds = ds.map(placed, num_parallel_calls=AUTOTUNE, deterministic=options.ordered)
    if not options.with_meta:
        ds = ds.map(lambda images, joints, weights: (images, {"joints": joints, "weights": weights}))
    return ds.prefetch(AUTOTUNE)


def _tf_data_options(ordered: bool) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = ordered
    # FILE sharding needs at least one shard file per worker; DATA works with any number of files.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options

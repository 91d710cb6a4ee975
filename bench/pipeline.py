"""Input-pipeline throughput: the tf.data training pipeline vs a naive per-sample numpy/cv2 loader.

Both read the same person-crop TFRecords and do the same work per sample: JPEG decode, one affine warp
(crop -> 256 input with rotation / scale / flip), per-channel colour scaling, joint transform with the flip
pair swap and subset selection, batching. The naive loader is one Python loop (protobuf parse,
cv2.imdecode, cv2.warpAffine), as a PyTorch-style Dataset without worker processes would run it.

    .venv/bin/python bench/pipeline.py                       # synthetic records in a temp dir
    .venv/bin/python bench/pipeline.py --records_dir R       # existing records (e.g. converted MPII)
"""

from __future__ import annotations

import gc
import os
import struct
import tempfile
import time

import kpt_tf  # noqa: F401  (first: it sets TF's start-up environment before TF loads: kpt_tf/__init__.py)

# isort: split
import cv2
import numpy as np
import tensorflow as tf
from absl import app, flags

from kpt_tf import geometry
from kpt_tf.data import pipeline, schema
from kpt_tf.data.augment import WARPS, AugmentConfig, warp_image
from kpt_tf.data.records import shard_files
from kpt_tf.data.splits import count_records
from kpt_tf.joints import NUM_JOINTS, JointSubset, full_flip_permutation

FLAGS = flags.FLAGS
flags.DEFINE_string("records_dir", "", "Existing TFRecord directory; empty = synthesise records in a temp dir.")
flags.DEFINE_string("split", "train", "Split to read.")
flags.DEFINE_integer("num_records", 256, "Synthetic records to write (when --records_dir is empty).")
flags.DEFINE_integer("batch_size", 8, "Batch size.")
flags.DEFINE_integer("num_batches", 40, "Timed batches per loader and round.")
flags.DEFINE_integer("rounds", 3, "Rounds; each times every loader once, in turn. Medians are reported.")
flags.DEFINE_integer("warmup_batches", 5, "Untimed batches first (graph tracing, autotune, file cache).")
flags.DEFINE_string("joints", "all", "Joint subset.")
flags.DEFINE_integer("seed", 0, "Seed of the synthetic data and of both loaders.")

INPUT_SIZE = 256
# What one H100-class GPU trains an 8 x 256 hourglass at in mixed precision, about (issue 34): the rate the CPU
# side must feed; "cores for" = this rate x CPU seconds per image.
FEED_RATE = 2000
CROP_SIZE = 384
MARGIN = 1.5


# --- records -----------------------------------------------------------------------------------------

def write_synthetic_records(directory: str, num_records: int, seed: int, num_shards: int = 4) -> None:
    """Person-crop records of textured random images (q95 JPEGs of about 60 KB, like real MPII crops)."""
    rng = np.random.default_rng(seed)
    per_shard = -(-num_records // num_shards)
    writers = [tf.io.TFRecordWriter(os.path.join(directory, schema.shard_name("train", k, num_shards)))
               for k in range(num_shards)]
    for index in range(num_records):
        coarse = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        crop = cv2.resize(coarse, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_CUBIC)
        crop = np.clip(crop.astype(np.int16) + rng.integers(-6, 7, crop.shape), 0, 255).astype(np.uint8)
        ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        center, scale = rng.uniform([200, 150], [600, 450]), rng.uniform(1.0, 3.0)
        to_image = geometry.invert_affine(geometry.crop_affine(center, scale, CROP_SIZE, margin=MARGIN))
        annotated = (rng.uniform(size=NUM_JOINTS) > 0.1).astype(np.int64)
        writers[index // per_shard].write(schema.encode_example({
            "image/encoded": jpeg.tobytes(), "image/crop_size": CROP_SIZE, "image/id": f"{index:06d}.jpg",
            "image/original_size": [600, 800], "person/index": 0, "person/dataset_index": index,
            "person/center": center, "person/scale": scale, "person/crop_margin": MARGIN,
            "joints/xy": rng.uniform(80, 300, size=(NUM_JOINTS, 2)), "joints/annotated": annotated,
            "joints/visible": annotated, "crop/to_image": to_image, "head/box": [0, 0, 10, 10],
            "head/has_box": 1}))
    for w in writers:
        w.close()


def read_tfrecord_file(path: str):
    """Raw records of a TFRecord file, read in Python (length, length crc, data, data crc)."""
    with open(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            data = f.read(length)
            f.read(4)
            yield data


# --- the naive loader ------------------------------------------------------------------------------

def naive_batches(files, subset: JointSubset, batch_size: int, augment: AugmentConfig, seed: int):
    """Per-sample Python loop doing the pipeline's work with numpy/cv2; yields (images, joints, weights)."""
    rng = np.random.default_rng(seed)
    full_flip = np.array(full_flip_permutation())
    indices = np.array(subset.indices)
    images, joints_list, weights_list = [], [], []
    while True:
        for path in files:
            for serialized in read_tfrecord_file(path):
                feature = tf.train.Example.FromString(serialized).features.feature
                crop = cv2.imdecode(np.frombuffer(feature["image/encoded"].bytes_list.value[0], np.uint8),
                                    cv2.IMREAD_COLOR)
                crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
                crop_size = feature["image/crop_size"].int64_list.value[0]
                margin = feature["person/crop_margin"].float_list.value[0]
                xy = np.array(feature["joints/xy"].float_list.value, np.float32).reshape(NUM_JOINTS, 2)
                annotated = np.array(feature["joints/annotated"].int64_list.value) > 0

                rotation = rng.uniform(-augment.rotation_deg, augment.rotation_deg) \
                    if rng.uniform() < augment.rotation_prob else 0.0
                scale = rng.uniform(augment.scale_min, augment.scale_max)
                flip = augment.flip and rng.uniform() < augment.flip_prob
                colour = rng.uniform(augment.color_min, augment.color_max, size=3)

                centre = (crop_size - 1) / 2.0
                m = geometry.crop_affine([centre, centre], crop_size * scale / (margin * 200.0), INPUT_SIZE,
                                         rotation_deg=rotation, flip=flip)
                image = cv2.warpAffine(crop, m, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
                image = np.clip(np.round(image * colour.astype(np.float32)), 0, 255).astype(np.uint8)
                points = geometry.apply_affine(m, xy).astype(np.float32)
                weights = annotated.astype(np.float32)
                if flip:
                    points, weights = points[full_flip], weights[full_flip]
                images.append(image)
                joints_list.append(points[indices])
                weights_list.append(weights[indices])
                if len(images) == batch_size:
                    yield np.stack(images), np.stack(joints_list), np.stack(weights_list)
                    images, joints_list, weights_list = [], [], []


def _same_warp_check(files) -> float:
    """Mean |difference| (grey levels) between the TF warp and cv2.warpAffine for one crop and affine."""
    serialized = next(read_tfrecord_file(files[0]))
    record = schema.parse_example_numpy(serialized)
    crop = record["image"]
    m = geometry.crop_to_input_affine(CROP_SIZE, MARGIN, INPUT_SIZE, 17.0, 1.1, True, backend="tf")
    tf_image = warp_image(crop, geometry.invert_affine(m, backend="tf"), INPUT_SIZE).numpy()
    cv_image = cv2.warpAffine(crop.astype(np.float32), m.numpy().astype(np.float64), (INPUT_SIZE, INPUT_SIZE),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inner = slice(8, INPUT_SIZE - 8)        # borders differ only in how far fill 0 bleeds in
    return float(np.abs(tf_image[inner, inner] - cv_image[inner, inner]).mean())


def decode_and_warp_floor(files, count: int, seed: int) -> dict:
    """CPU ms per image of the work no loader can avoid, on one core (cv2 single-threaded): libjpeg-turbo's decode
    of the stored crop (cv2.imdecode), one bilinear warp of it to the input size (cv2.warpAffine), and both. Each
    is timed over the same `count` records (already read into memory), the minimum of three passes."""
    cv2_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        jpegs = []
        for path in files:
            for serialized in read_tfrecord_file(path):
                feature = tf.train.Example.FromString(serialized).features.feature
                jpegs.append(np.frombuffer(feature["image/encoded"].bytes_list.value[0], np.uint8))
                if len(jpegs) == count:
                    break
            if len(jpegs) == count:
                break
        crops = [cv2.imdecode(j, cv2.IMREAD_COLOR) for j in jpegs]
        rng = np.random.default_rng(seed)
        affines = []
        for crop in crops:
            centre = (crop.shape[0] - 1) / 2.0
            affines.append(geometry.crop_affine([centre, centre], crop.shape[0] * rng.uniform(0.75, 1.25) / 300.0,
                                                INPUT_SIZE, rotation_deg=rng.uniform(-30, 30), flip=False))

        def decode_only():
            for j in jpegs:
                cv2.imdecode(j, cv2.IMREAD_COLOR)

        def warp_only():
            for crop, m in zip(crops, affines):
                cv2.warpAffine(crop, m, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)

        def decode_and_warp():
            for j, m in zip(jpegs, affines):
                cv2.warpAffine(cv2.imdecode(j, cv2.IMREAD_COLOR), m, (INPUT_SIZE, INPUT_SIZE),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

        floor = {}
        for name, work in (("decode", decode_only), ("warp", warp_only), ("decode + warp", decode_and_warp)):
            passes = []
            for _ in range(3):
                cpu = time.process_time()
                work()
                passes.append(time.process_time() - cpu)
            floor[name] = 1000.0 * min(passes) / len(jpegs)
        floor["crop size"] = int(crops[0].shape[0])
        return floor
    finally:
        cv2.setNumThreads(cv2_threads)


def _time_once(iterator, count: int) -> tuple[float, float, int]:
    wall, cpu = time.perf_counter(), time.process_time()
    images = 0
    for _ in range(count):
        images += int(next(iterator)[0].shape[0])
    return time.perf_counter() - wall, time.process_time() - cpu, images


def run(records_dir: str, split: str, batch_size: int, num_batches: int, warmup: int, joints: str,
        seed: int, rounds: int) -> dict:
    """Times the loaders on the same records, alternating them for `rounds` rounds (the machine's load
    changes over time; alternation exposes every loader to it alike); reports per-loader medians."""
    subset = JointSubset.parse(joints)
    augment = AugmentConfig()
    files = shard_files(records_dir, split)
    total = count_records(records_dir, split)
    # Factories: a tf.data iterator keeps prefetching in background threads, so each round starts a fresh
    # one (after warm-up) and drops it before the next loader is timed.
    factories = {"naive numpy/cv2 loop": lambda: naive_batches(files, subset, batch_size, augment, seed)}
    for warp in reversed(WARPS):
        ds = pipeline.make_dataset(records_dir, split, subset, pipeline.StreamOptions(
            batch_size, training=True, input_size=INPUT_SIZE, augment=augment, seed=seed,
            shuffle_buffer=min(total, 2048), warp=warp))
        factories[f"tf.data, warp={warp}"] = ds.as_numpy_iterator
    samples = {name: [] for name in factories}
    for _ in range(rounds):
        for name, factory in factories.items():
            iterator = factory()
            for _ in range(warmup):
                next(iterator)
            samples[name].append(_time_once(iterator, num_batches))
            del iterator
            gc.collect()
    results = {}
    for name, runs in samples.items():
        rates = [images / wall for wall, _, images in runs]
        results[name] = dict(rate=float(np.median(rates)), rates=rates,
                             cpu_ms=1000.0 * sum(c for _, c, _ in runs) / sum(n for _, _, n in runs))
    return dict(records=total, loaders=results, warp_difference=_same_warp_check(files),
                floor=decode_and_warp_floor(files, min(total, 128), seed))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    for name in ("batch_size", "num_batches", "num_records", "rounds"):
        if getattr(FLAGS, name) <= 0:
            raise app.UsageError(f"--{name} must be positive, got {getattr(FLAGS, name)}")
    with tempfile.TemporaryDirectory() as tmp:
        records_dir = FLAGS.records_dir
        if not records_dir:
            records_dir = tmp
            write_synthetic_records(tmp, FLAGS.num_records, FLAGS.seed)
        elif not os.path.isdir(records_dir):
            raise app.UsageError(f"--records_dir {records_dir!r} is not a directory")
        try:
            result = run(records_dir, FLAGS.split, FLAGS.batch_size, FLAGS.num_batches, FLAGS.warmup_batches,
                         FLAGS.joints, FLAGS.seed, FLAGS.rounds)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"bench/pipeline.py: {e}") from None

    images = FLAGS.batch_size * FLAGS.num_batches
    source = "synthetic" if not FLAGS.records_dir else FLAGS.records_dir
    print(f"\nInput pipeline with augmentation, {result['records']} records ({source}), batch {FLAGS.batch_size}; "
          f"{FLAGS.rounds} rounds of {images} images per loader, loaders alternating; {os.cpu_count()} CPU "
          f"cores, cv2 threads {cv2.getNumThreads()}")
    floor = result["floor"]
    print(f"The floor, one core: {floor['crop size']} px stored crop -> {INPUT_SIZE} px input; CPU ms per image: "
          f"cv2 decode {floor['decode']:.2f}, one cv2 bilinear warp {floor['warp']:.2f}, both "
          f"{floor['decode + warp']:.2f}")
    print("| loader | images/s (median) | per round | CPU ms / image | x floor | images/s per core | cores for "
          f"{FEED_RATE:,} images/s | speed vs naive |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    naive = result["loaders"]["naive numpy/cv2 loop"]["rate"]
    rows = {"floor: cv2 decode + warp": dict(rate=float("nan"), rates=[], cpu_ms=floor["decode + warp"]),
            **result["loaders"]}
    for name, r in rows.items():
        rounds = " ".join(f"{x:.0f}" for x in r["rates"]) or "-"
        rate = f"{r['rate']:.0f}" if r["rates"] else "-"
        speed = f"{r['rate'] / naive:.2f}x" if r["rates"] else "-"
        print(f"| {name} | {rate} | {rounds} | {r['cpu_ms']:.2f} | {r['cpu_ms'] / floor['decode + warp']:.2f} | "
              f"{1000.0 / r['cpu_ms']:.0f} | {FEED_RATE * r['cpu_ms'] / 1000.0:.1f} | {speed} |")
    print(f"(same crop and affine: TF warp vs cv2.warpAffine differ by {result['warp_difference']:.4f} grey "
          "levels on average)")


if __name__ == "__main__":
    from kpt_tf import cli

    cli.run(main, "bench.pipeline")

"""tf.data pipeline: geometry of augmentation, flip pair swap, subsets, determinism, eval mapping, sharding, and the
keypoint layout taken from the records (COCO's 17 joints and flip pairs; another layout's subset refused).

The records are drawn here: each joint is a dot of its own colour on a grey crop, so the image can be
checked at every transformed joint position.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from kpt_tf import geometry, layouts
from kpt_tf.data import augment, pipeline, schema, splits
from kpt_tf.data import manifest as mf
from kpt_tf.data.augment import AugmentConfig
from kpt_tf.data.pipeline import StreamOptions
from kpt_tf.joints import MPII16, NUM_JOINTS, JointSubset, flip_partner
from tests.conftest import REPO

CROP_SIZE = 384
MARGIN = 1.5
INPUT_SIZE = 256
BACKGROUND = 100
DOT_RADIUS = 8
# 17 distinct colours (COCO's joint count; MPII uses the first 16) from {0, 128, 255}^3, none close to the grey
# background.
PALETTE = np.array([c for c in np.ndindex(3, 3, 3) if len(set(c)) > 1][:17]) * 127.5
PALETTE = np.round(PALETTE).astype(np.uint8)
NO_AUGMENT_COLOUR = dict(color_min=1.0, color_max=1.0)


def _joint_positions(rng, num_joints):
    """Crop positions, apart from each other and from the crop centre (kept as background)."""
    centre = (CROP_SIZE - 1) / 2
    points = []
    while len(points) < num_joints:
        p = rng.uniform(centre - 110, centre + 110, size=2)
        if np.linalg.norm(p - centre) > 30 and all(np.linalg.norm(p - q) > 2 * DOT_RADIUS + 10 for q in points):
            points.append(p)
    return np.array(points)


def write_records(directory, split, num_records, num_shards, seed, layout=MPII16):
    """Dot-drawn person-crop records of a keypoint layout's joints; returns {dataset_index: truth dict} for the
    checks. (The manifest naming a layout other than MPII's is the caller's.)"""
    rng = np.random.default_rng(seed)
    num_joints = len(layout.joints)
    truth = {}
    writers = [tf.io.TFRecordWriter(os.path.join(directory, schema.shard_name(split, k, num_shards)))
               for k in range(num_shards)]
    per_shard = -(-num_records // num_shards)
    yy, xx = np.mgrid[0:CROP_SIZE, 0:CROP_SIZE]
    for index in range(num_records):
        center = rng.uniform([300, 200], [500, 300])
        scale = rng.uniform(1.0, 2.0)
        image_to_crop = geometry.crop_affine(center, scale, CROP_SIZE, margin=MARGIN)
        crop_to_image = geometry.invert_affine(image_to_crop)
        joints_crop = _joint_positions(rng, num_joints)
        annotated = np.ones(num_joints, np.int64)
        annotated[rng.choice(num_joints, 2, replace=False)] = 0
        visible = annotated * (rng.uniform(size=num_joints) > 0.5)
        crop = np.full([CROP_SIZE, CROP_SIZE, 3], BACKGROUND, np.uint8)
        for j, (x, y) in enumerate(joints_crop):
            crop[(xx - x) ** 2 + (yy - y) ** 2 <= DOT_RADIUS ** 2] = PALETTE[j]
        jpeg = tf.io.encode_jpeg(crop, quality=100, chroma_downsampling=False).numpy()
        joints_crop_stored = np.where(annotated[:, None] > 0, joints_crop, 0.0)
        record = {
            "image/encoded": jpeg, "image/crop_size": CROP_SIZE, "image/id": f"{split}_{index:04d}.jpg",
            "image/original_size": [600, 800], "person/index": 0, "person/dataset_index": index,
            "person/center": center, "person/scale": scale, "person/crop_margin": MARGIN,
            "joints/xy": joints_crop_stored, "joints/annotated": annotated, "joints/visible": visible,
            "crop/to_image": crop_to_image, "head/box": [center[0] - 20, center[1] - 90, center[0] + 20,
                                                          center[1] - 50],
            "head/has_box": 1,
        }
        writers[index // per_shard].write(schema.encode_example(record, layout))
        truth[index] = dict(joints_image=geometry.apply_affine(crop_to_image, joints_crop),
                            joints_crop=joints_crop, annotated=annotated, visible=visible,
                            scale=scale)
    for w in writers:
        w.close()
    return truth


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    directory = tmp_path_factory.mktemp("records")
    train = write_records(directory, "train", 12, 2, seed=0)
    val = write_records(directory, "val", 6, 1, seed=1)
    return str(directory), train, val


def make_dataset(directory, split, subset, batch_size, input_context=None, **options):
    """`pipeline.make_dataset` with the stream's options (`StreamOptions`) as keywords."""
    return pipeline.make_dataset(directory, split, subset, StreamOptions(batch_size, **options), input_context)


def _batches(ds, count):
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds.take(count)]


def _concat(batches):
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_xla_sampler_equals_image_projective_transform(records):
    directory, _, _ = records
    rng = np.random.default_rng(4)
    crop = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    for rotation, scale, flip in [(0.0, 1.0, False), (29.0, 1.25, True), (-13.0, 0.75, False)]:
        to_input = geometry.crop_to_input_affine(50, 1.2, 32, rotation, scale, flip, backend="tf")
        to_crop = geometry.invert_affine(to_input, backend="tf")
        np.testing.assert_allclose(augment.warp_image(crop, to_crop, 32).numpy(),
                                   augment.projective_warp(crop, to_crop, 32).numpy(), atol=2e-3)
    # The whole pipeline gives the same joints with every warp, and the same images: the two TF warps to one grey
    # level (rounding); "cv2" decodes with the accurate DCT (about a level from TF's fast one on average) and its
    # warp quantises the sampling position to 1/32 px, which moves a sharp edge's pixels by up to 255/32 levels:
    # together 21-25 at a few pixels of these sharp-edged test crops (0.06-0.24 % beyond 9), 99 % within 3-5 levels,
    # a fifth of a level on average. The streams: training (augmented), evaluation (with_meta; batches of 5 over the
    # 12 records, so the last is partial), and augmented with_meta (the evaluation fields under rotation and flip).
    for options in (dict(training=True, augment=AugmentConfig(), seed=5, deterministic=True),
                    dict(training=False, with_meta=True),
                    dict(training=True, augment=AugmentConfig(), seed=6, deterministic=True, with_meta=True)):
        size, count = (5, 3) if options.get("training") is False else (6, 1)
        streams = {warp: _batches(make_dataset(directory, "train", "all", size, warp=warp, **options), count)
                   for warp in augment.WARPS}
        if count > 1:
            assert [len(b["image"]) for b in streams["cv2"]] == [5, 5, 2]
        for index in range(count):
            batches = {warp: stream[index] for warp, stream in streams.items()}
            labels = {w: b if isinstance(b, dict) else {"image": b[0], **b[1]} for w, b in batches.items()}
            images = {w: fields["image"].astype(int) for w, fields in labels.items()}
            assert images["xla"].shape[1:] == (256, 256, 3) and images["xla"].std() > 10
            assert np.abs(images["xla"] - images["projective_transform"]).max() <= 1
            cv2_difference = np.abs(images["xla"] - images["cv2"])
            within = np.percentile(cv2_difference, 99)
            assert within <= 6 and cv2_difference.mean() < 0.5 and cv2_difference.max() <= 32, (
                within, cv2_difference.mean(), cv2_difference.max())
            # and bit for bit the same joints, weights and evaluation fields, whether placed per record ("xla",
            # "projective_transform") or per batch ("cv2": batched affines, one parse per batch)
            for warp in augment.WARPS:
                assert set(labels[warp]) == set(labels["xla"])
                for name in set(labels[warp]) - {"image"}:
                    np.testing.assert_array_equal(labels[warp][name], labels["xla"][name], err_msg=f"{warp}: {name}")


def test_the_cv2_batch_renderer_decodes_like_libjpeg_accurate_dct_and_warps_like_the_xla_sampler():
    """Each half of "cv2" against its reference: OpenCV's decode equals TF's with the accurate DCT bit for bit, and
    its warp and colour factor equal the XLA sampler's on that crop within the 1/32-px quantisation (max 9 levels at
    sharp edges) and one rounding (cv2 rounds the warp to uint8 before the colour factor: mean below half a level;
    0.27 on this textured picture)."""
    import cv2

    rng = np.random.default_rng(7)
    smooth = cv2.resize(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), (100, 120), interpolation=cv2.INTER_CUBIC)
    picture = np.clip(smooth.astype(int) + rng.integers(-20, 21, smooth.shape), 0, 255).astype(np.uint8)
    jpeg = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    accurate = tf.io.decode_jpeg(jpeg, channels=3, dct_method="INTEGER_ACCURATE").numpy()
    fast = tf.io.decode_jpeg(jpeg, channels=3).numpy()
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR_RGB), accurate)
    assert 0.1 < np.abs(accurate.astype(int) - fast).mean() < 2.0       # the two DCTs differ, by about a level
    to_input = [geometry.crop_to_input_affine(100, 1.2, 64, rotation, scale, flip)
                for rotation, scale, flip in [(0.0, 1.0, False), (29.0, 1.25, True), (-13.0, 0.75, False)]]
    to_crop = np.stack([geometry.invert_affine(m) for m in to_input]).astype(np.float32)
    colours = np.array([[1.0, 1.0, 1.0], [0.8, 1.1, 1.2], [1.2, 0.9, 0.85]], np.float32)
    rendered = augment.make_batch_renderer(64, "cv2")(tf.constant([jpeg] * 3), np.float32(to_input), colours,
                                                      tf.constant([b"picture.jpg"] * 3)).numpy()
    for image, m, colour in zip(rendered, to_crop, colours):
        reference = np.round(np.clip(augment.warp_image(accurate, m, 64).numpy() * colour, 0, 255))
        difference = np.abs(image.astype(int) - reference)
        assert difference.max() <= 9 and difference.mean() < 0.5, (difference.max(), difference.mean())


def test_a_crop_opencv_cannot_decode_stops_the_cv2_stream_naming_the_problem():
    render = augment.make_batch_renderer(32, "cv2")
    stream = tf.data.Dataset.from_tensors((tf.constant([b"not a jpeg"]), tf.zeros([1, 2, 3]), tf.ones([1, 3]),
                                           tf.constant([b"015601864.jpg"])))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="stored crop of a person of image '015601864.jpg' .10 bytes. is not a JPEG OpenCV can"):
        next(iter(stream.map(render)))


def _dot_centroid(image, x, y, radius):
    """Centroid of "differs from the background" around (x, y), within `radius` input px."""
    background = image[128, 128].astype(float)
    x0, y0, r = int(round(x)), int(round(y)), int(np.ceil(radius)) + 1
    window = image[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1].astype(float)
    yy, xx = np.mgrid[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1]
    weight = np.linalg.norm(window - background, axis=-1) * ((xx - x) ** 2 + (yy - y) ** 2 <= radius ** 2)
    return np.array([(weight * xx).sum(), (weight * yy).sum()]) / weight.sum()


def test_augmented_images_show_each_joint_dot_at_its_transformed_position(records):
    directory, train, _ = records
    ds = make_dataset(directory, "train", "all", batch_size=6, training=True, augment=AugmentConfig(),
                      seed=3, deterministic=True, with_meta=True)
    batch = _concat(_batches(ds, 3))
    assert batch["image"].dtype == np.uint8 and batch["image"].shape == (18, INPUT_SIZE, INPUT_SIZE, 3)
    flipped = np.linalg.det(batch["input_to_image"][:, :, :2]) < 0
    assert 0 < flipped.sum() < len(flipped)
    checked, centroid_errors = 0, []
    for k in range(len(flipped)):
        truth = train[int(batch["dataset_index"][k])]
        expected_weights = truth["annotated"][[flip_partner(j) for j in range(NUM_JOINTS)]] if flipped[k] \
            else truth["annotated"]
        # Weights are the annotated flags (not the visible ones), pairs swapped by the flip.
        np.testing.assert_array_equal(batch["weights"][k], expected_weights)
        # Colour scaling: the crop centre (background) lands on the input centre.
        colour = batch["image"][k, 128, 128].astype(float) / BACKGROUND
        assert np.all((colour > 0.79) & (colour < 1.21))
        # Input pixels per crop pixel, from two annotated joints (rotation does not change distances).
        a, b = np.flatnonzero(truth["annotated"])[:2]
        pa, pb = (flip_partner(i) if flipped[k] else i for i in (a, b))
        zoom = np.linalg.norm(batch["joints"][k, pa] - batch["joints"][k, pb]) / np.linalg.norm(
            truth["joints_crop"][a] - truth["joints_crop"][b])
        for j in range(NUM_JOINTS):
            x, y = batch["joints"][k, j]
            if batch["weights"][k, j] == 0 or not (3 <= x <= INPUT_SIZE - 4 and 3 <= y <= INPUT_SIZE - 4):
                continue
            drawn = flip_partner(j) if flipped[k] else j
            pixel = batch["image"][k, int(round(y)), int(round(x))].astype(float)
            expected = np.clip(PALETTE[drawn] * colour, 0, 255)
            assert np.abs(pixel - expected).max() < 20, (k, j, pixel, expected)
            checked += 1
            if 20 <= min(x, y) and max(x, y) <= INPUT_SIZE - 21:
                centroid_errors.append(_dot_centroid(batch["image"][k], x, y, DOT_RADIUS * zoom + 2) - [x, y])
    assert checked > 150
    # Sub-pixel agreement of image and joints: a half-pixel convention slip would show as a 0.5 px bias.
    centroid_errors = np.array(centroid_errors)
    assert len(centroid_errors) > 50
    # (Measured over 6 seeds: bias < 0.01, rms < 0.06, max < 0.16 px; a 0.5 px source shift: rms 0.46, max 0.7.)
    assert np.all(np.abs(centroid_errors.mean(axis=0)) < 0.05), centroid_errors.mean(axis=0)
    assert np.all(np.sqrt(np.mean(centroid_errors ** 2, axis=0)) < 0.15)
    assert np.abs(centroid_errors).max() < 0.35


def test_forced_flip_swaps_pairs_before_subset_selection(records):
    directory, _, _ = records
    flip_only = AugmentConfig(rotation_prob=0.0, scale_min=1.0, scale_max=1.0, flip_prob=1.0,
                              **NO_AUGMENT_COLOUR)
    left = JointSubset.parse("left")
    flipped = _concat(_batches(make_dataset(directory, "train", left, 12, training=True, augment=flip_only,
                                            seed=0, deterministic=True, with_meta=True), 1))
    plain = _concat(_batches(make_dataset(directory, "train", "all", 12, training=False, with_meta=True), 1))
    order = {int(d): k for k, d in enumerate(plain["dataset_index"])}
    for k, index in enumerate(flipped["dataset_index"]):
        source = plain["joints"][order[int(index)]]
        for channel, name in enumerate(left.names):
            partner = flip_partner(left.indices[channel])       # e.g. left wrist <- right wrist
            expected = [INPUT_SIZE - 1 - source[partner, 0], source[partner, 1]]
            np.testing.assert_allclose(flipped["joints"][k, channel], expected, atol=1e-3, err_msg=name)
            assert flipped["weights"][k, channel] == plain["weights"][order[int(index)], partner]
        np.testing.assert_array_equal(flipped["image"][k], plain["image"][order[int(index)], :, ::-1])


def test_subset_selects_joints_by_name(records):
    directory, _, _ = records
    subset = JointSubset.parse("left_wrist,right_knee,head_top")
    some = _batches(make_dataset(directory, "val", subset, 6, training=False), 1)[0]
    full = _batches(make_dataset(directory, "val", "all", 6, training=False), 1)[0]
    assert some[1]["joints"].shape == (6, 3, 2)
    np.testing.assert_array_equal(some[1]["joints"], full[1]["joints"][:, [15, 1, 9]])
    np.testing.assert_array_equal(some[1]["weights"], full[1]["weights"][:, [15, 1, 9]])
    np.testing.assert_array_equal(some[0], full[0])


def test_same_seed_same_batches_other_seed_or_epoch_differs(records):
    directory, _, _ = records

    def first_batches(seed, count=2):
        return _batches(make_dataset(directory, "train", "upper", 4, training=True, augment=AugmentConfig(),
                                     seed=seed, deterministic=True, with_meta=True), count)

    a, b, c = first_batches(7), first_batches(7), first_batches(8)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert any(not np.array_equal(x["image"], z["image"]) for x, z in zip(a, c))

    # 12 records, batches of 4: the second epoch shows every record again with a new augmentation.
    epochs = first_batches(7, count=6)
    first, second = _concat(epochs[:3]), _concat(epochs[3:])
    assert sorted(first["dataset_index"]) == sorted(second["dataset_index"]) == list(range(12))
    by_index = {int(d): m for d, m in zip(first["dataset_index"], first["input_to_image"])}
    changed = [not np.allclose(by_index[int(d)], m) for d, m in zip(second["dataset_index"],
                                                                      second["input_to_image"])]
    assert all(changed)


def test_each_worker_gets_its_replicas_block_of_the_global_batch(records):
    """Two workers' pipelines (distribute_datasets_from_function): worker w's batch is the w-th half of the global
    batch one machine would train on, the same crops exactly, so 2 workers train like 2 replicas."""
    directory, _, _ = records

    def batches(context=None, count=3):
        return _batches(make_dataset(directory, "train", "all", 4, training=True, augment=AugmentConfig(), seed=3,
                                     deterministic=True, with_meta=True, input_context=context), count)

    whole = batches()
    halves = [batches(tf.distribute.InputContext(2, w, 2)) for w in range(2)]
    for step, global_batch in enumerate(whole):
        for w in range(2):
            for key in ("dataset_index", "image", "joints"):
                np.testing.assert_array_equal(halves[w][step][key], global_batch[key][2 * w:2 * w + 2], key)


def test_eval_mode_maps_joints_back_to_the_source_image(records):
    directory, _, val = records
    ds = make_dataset(directory, "val", "all", batch_size=4, training=False, with_meta=True)
    batches = _batches(ds, 10)
    assert [len(b["image"]) for b in batches] == [4, 2]      # remainder kept, one pass
    batch = _concat(batches)
    np.testing.assert_array_equal(batch["dataset_index"], np.arange(6))    # file order
    assert batch["input_to_image"].shape == (6, 2, 3) and batch["head_box"].shape == (6, 4)
    for k, index in enumerate(batch["dataset_index"]):
        truth = val[int(index)]
        back = geometry.apply_affine(batch["input_to_image"][k], batch["joints"][k])
        annotated = truth["annotated"] > 0
        np.testing.assert_allclose(back[annotated], truth["joints_image"][annotated], atol=1e-3)
        np.testing.assert_array_equal(batch["annotated"][k], truth["annotated"])
        assert batch["image_id"][k].decode() == f"val_{int(index):04d}.jpg"
        # Un-augmented input: exactly one person box (200 * scale source px) over 256 input px.
        np.testing.assert_allclose(batch["input_to_image"][k, :, :2], np.eye(2) * 200 * truth["scale"] / 256,
                                   rtol=1e-5, atol=1e-6)


def test_training_element_structure_and_drop_remainder(records):
    directory, _, _ = records
    ds = make_dataset(directory, "train", "arms", 5, training=True, augment=None, seed=0, repeat=False)
    batches = _batches(ds, 10)
    assert len(batches) == 2                                   # 12 records, batch 5, remainder dropped
    images, targets = batches[0]
    assert images.shape == (5, INPUT_SIZE, INPUT_SIZE, 3) and images.dtype == np.uint8
    assert set(targets) == {"joints", "weights"}
    assert targets["joints"].shape == (5, 6, 2) and targets["joints"].dtype == np.float32
    assert targets["weights"].shape == (5, 6) and targets["weights"].dtype == np.float32
    options = ds.options()
    assert options.experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA


def test_counts_and_mean_pose(records, tmp_path):
    directory, train, _ = records
    assert splits.count_records(directory, "train") == 12
    assert splits.count_records(directory, "val") == 6
    with pytest.raises(FileNotFoundError, match="test"):
        splits.count_records(directory, "test")
    # The converter's manifest is trusted only when its shard list matches the files on disk.
    shards = sorted(p for p in os.listdir(directory) if p.startswith("train-"))
    manifest = {"complete": True, "shards": [{"file": name, "split": "train", "records": 50} for name in shards]}
    for name in shards:
        (tmp_path / name).symlink_to(os.path.join(directory, name))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert splits.count_records(str(tmp_path), "train") == 100
    (tmp_path / shards[0]).unlink()
    assert splits.count_records(str(tmp_path), "train") == 6       # stale manifest: counted

    mean = splits.mean_training_pose(directory, "left_wrist,pelvis", INPUT_SIZE)
    k = INPUT_SIZE * MARGIN / CROP_SIZE                        # crop px -> input px, about the centres
    expected = []
    for j in (15, 6):
        pts = [(t["joints_crop"][j] - (CROP_SIZE - 1) / 2) * k + (INPUT_SIZE - 1) / 2
               for t in train.values() if t["annotated"][j]]
        expected.append(np.mean(pts, axis=0))
    np.testing.assert_allclose(mean, expected, atol=1e-3)


DISTRIBUTED_CHECK = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    # Must run before TF initialises its devices: two logical CPUs for a 2-replica MirroredStrategy.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tensorflow.python.data.experimental.ops import distribute as distribute_ops
    from kpt_tf.data.pipeline import StreamOptions, make_dataset

    directory = sys.argv[1]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    ds = make_dataset(directory, "val", "all", StreamOptions(4, training=False, with_meta=True))
    replica_sizes, seen = [], []
    for batch in strategy.experimental_distribute_dataset(ds):
        parts = strategy.experimental_local_results(batch["dataset_index"])
        replica_sizes.append([int(p.shape[0]) for p in parts])
        seen += [int(i) for p in parts for i in p.numpy()]
    # distribute_datasets_from_function: the pipeline makes per-replica batches itself.
    per_replica = strategy.distribute_datasets_from_function(
        lambda context: make_dataset(directory, "val", "all", StreamOptions(4, training=False, with_meta=True),
                                     input_context=context))
    function_sizes = [[int(p.shape[0]) for p in strategy.experimental_local_results(b["dataset_index"])]
                      for b in per_replica]
    # Two workers reading the single val shard: DATA sharding splits records (FILE would fail).
    workers = [sorted(int(i) for b in distribute_ops._AutoShardDataset(ds, 2, w) for i in b["dataset_index"])
               for w in range(2)]
    print(json.dumps(dict(replicas=strategy.num_replicas_in_sync, replica_sizes=replica_sizes,
                          seen=sorted(seen), workers=workers, function_sizes=function_sizes)))
""")


@pytest.mark.slow
def test_data_auto_shard_under_a_two_replica_strategy(records):
    directory, _, _ = records
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", DISTRIBUTED_CHECK, directory], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert result["replica_sizes"] == [[2, 2], [1, 1]]
    assert result["seen"] == list(range(6))
    assert result["function_sizes"] == [[2, 2], [2, 0]]        # 6 records: the last step is partial
    assert sorted(result["workers"][0] + result["workers"][1]) == list(range(6))
    assert result["workers"][0] and result["workers"][1]


COCO17 = layouts.layout("coco17")


@pytest.fixture(scope="module")
def coco_records(tmp_path_factory):
    """COCO-layout records written directly with the schema's writer, and a manifest naming their layout."""
    directory = tmp_path_factory.mktemp("coco_records")
    train = write_records(directory, "train", 8, 1, seed=10, layout=COCO17)
    write_records(directory, "val", 4, 1, seed=11, layout=COCO17)
    (directory / mf.MANIFEST_NAME).write_text(json.dumps(mf.build_manifest({}, {}, {}, {}, True, layout="coco17")))
    return str(directory), train


def test_coco17_records_stream_17_joints_with_cocos_flip_pairs_swapped(coco_records):
    directory, train = coco_records
    flip_only = AugmentConfig(rotation_prob=0.0, scale_min=1.0, scale_max=1.0, flip_prob=1.0, **NO_AUGMENT_COLOUR)
    plain = _concat(_batches(make_dataset(directory, "train", "all", 8, training=False, with_meta=True), 1))
    flipped = _concat(_batches(make_dataset(directory, "train", "all", 8, training=True, augment=flip_only, seed=0,
                                            deterministic=True, with_meta=True), 1))
    assert plain["joints"].shape == flipped["joints"].shape == (8, 17, 2) and plain["visible"].shape == (8, 17)
    partner = COCO17.flip_partners
    assert partner[COCO17.index("left_eye")] == COCO17.index("right_eye") and partner[0] == 0     # nose: midline
    order = {int(d): k for k, d in enumerate(plain["dataset_index"])}
    checked = 0
    for k, index in enumerate(flipped["dataset_index"]):
        source = order[int(index)]
        np.testing.assert_array_equal(plain["weights"][source], train[int(index)]["annotated"])
        for j in range(17):
            # the left-eye channel of a mirrored crop holds the right eye, where that eye's dot is now drawn
            x, y = plain["joints"][source, partner[j]]
            np.testing.assert_allclose(flipped["joints"][k, j], [INPUT_SIZE - 1 - x, y], atol=1e-3)
            assert flipped["weights"][k, j] == plain["weights"][source, partner[j]]
            fx, fy = np.round(flipped["joints"][k, j]).astype(int)
            if flipped["weights"][k, j] and 0 <= min(fx, fy) and max(fx, fy) < INPUT_SIZE:
                assert np.abs(flipped["image"][k, fy, fx].astype(float) - PALETTE[partner[j]]).max() < 20
                checked += 1
        np.testing.assert_array_equal(flipped["image"][k], plain["image"][source, :, ::-1])
    assert checked > 60
    limbs = _batches(make_dataset(directory, "val", "all-head", 4, training=False), 1)[0]
    everything = _batches(make_dataset(directory, "val", "all", 4, training=False), 1)[0]
    np.testing.assert_array_equal(limbs[1]["joints"], everything[1]["joints"][:, 5:])    # COCO's 12 limb joints
    assert splits.mean_training_pose(directory, "nose,left_eye", INPUT_SIZE).shape == (2, 2)
    np.testing.assert_array_equal(splits.record_people(directory, "train")["dataset_index"], np.arange(8))


def test_a_subset_of_another_layout_is_refused_naming_the_data_dir_and_both_layouts(records, coco_records):
    mpii_dir, coco_dir = records[0], coco_records[0]
    for directory, subset, ours, theirs in [(coco_dir, "mpii16:all", "coco17", "mpii16"),
                                            (mpii_dir, "coco17:all-head", "mpii16", "coco17"),
                                            (mpii_dir, JointSubset.parse("coco17:all"), "mpii16", "coco17")]:
        with pytest.raises(ValueError, match=rf"data dir {directory} holds {ours} records .* is of layout "
                                             rf"{theirs}, but is read against layout {ours}"):
            make_dataset(directory, "val", subset, 4, training=False)
    with pytest.raises(ValueError, match=rf"data dir {coco_dir} holds coco17 records \(17 joints\).* unknown joint "
                                         "'head_top'"):
        make_dataset(coco_dir, "val", "head_top,nose", 4, training=False)


def test_training_reads_the_joints_against_the_records_layout(records, coco_records, tmp_path):
    from kpt_tf.training import loop
    from tests.conftest import tiny_train_config

    mpii_dir, coco_dir = records[0], coco_records[0]
    with pytest.raises(ValueError, match=f"data dir {mpii_dir} holds mpii16 records.*'coco17:all' is of layout coco17"):
        loop.train(tiny_train_config(mpii_dir, joints="coco17:all"), tmp_path / "run", verbose=0)
    assert not (tmp_path / "run").exists()               # refused before anything is written
    on_coco = loop.config_subset(tiny_train_config(coco_dir, joints="all-head"))
    assert on_coco.layout is COCO17 and on_coco.names[0] == "left_shoulder" and len(on_coco) == 12
    # The saved config keeps the layout with the joints; MPII's stay as written.
    assert loop.recorded_joints("all-head", on_coco) == "coco17:all-head"
    assert loop.recorded_joints("Upper", loop.config_subset(tiny_train_config(mpii_dir, joints="Upper"))) == "Upper"

"""The offline converter (data_prep.mpii_to_tfrecord, data_prep.crops, data_prep.shards)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from data_prep import crops
from data_prep import mpii_to_tfrecord as conv
from data_prep.conversion import skip_summary
from data_prep.shards import TMP_PREFIX, ShardWriter
from kpt_tf import geometry
from tests.conftest import REPO
from tests.conftest import require_shared_mpii as _require_shared
from tests.kpt_tf.mpii.test_annotations import write_release_mat

# --------------------------------------------------------------------------------------------------
# Small hand-made data sets in the real mpii_annotations.json schema (1-based pixels)
# --------------------------------------------------------------------------------------------------

def _texture(rng, height, width):
    coarse = rng.integers(0, 256, (max(height // 16, 2), max(width // 16, 2), 3), dtype=np.uint8)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)


def _person(rng, width, height, is_val, image_index, people_index, scale=None, headbox=True):
    scale = float(rng.uniform(0.5, 0.9)) if scale is None else scale
    objpos = [float(rng.uniform(0.35, 0.65) * width), float(rng.uniform(0.35, 0.55) * height)]
    joints = []
    for _ in range(16):
        x = objpos[0] + float(rng.uniform(-60, 60)) * scale
        y = objpos[1] + float(rng.uniform(-80, 100)) * scale
        joints.append([round(x, 3), round(y, 3), float(rng.integers(0, 2))])
    joints[int(rng.integers(0, 16))] = [0.0, 0.0, 0.0]  # one joint not annotated
    record = {"dataset": "MPI", "isValidation": float(is_val), "img_paths": f"{image_index:09d}.jpg",
              "img_width": float(width), "img_height": float(height), "objpos": objpos, "joint_self": joints,
              "scale_provided": scale, "annolist_index": float(image_index + 1),
              "people_index": float(people_index + 1), "numOtherPeople": 0.0}
    if headbox:
        record["headbox"] = [[objpos[0] - 10, objpos[1] - 90], [objpos[0] + 12, objpos[1] - 60]]
    return record


def make_dataset(root: Path, num_images=6, seed=0, size=(320, 240), people_per_image=(1, 2), val_every=3):
    """Images (smooth random textures) + annotations.json; -> (annotations path, images dir, records).
    Every `val_every`-th image's people are validation people (0: none)."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(num_images):
        width, height = size
        cv2.imwrite(str(images / f"{i:09d}.jpg"), _texture(rng, height, width), [cv2.IMWRITE_JPEG_QUALITY, 90])
        for p in range(people_per_image[i % len(people_per_image)]):
            is_val = bool(val_every) and i % val_every == val_every - 1
            records.append(_person(rng, width, height, is_val, i, p, headbox=(i % 2 == 0)))
    annotations = root / "annotations.json"
    annotations.write_text(json.dumps(records))
    return annotations, images, records


def read_records(output_dir: Path) -> list[dict]:
    """Every record of every shard listed in the manifest, in manifest order, parsed by the schema."""
    import tensorflow as tf

    from kpt_tf.data.schema import parse_example_numpy

    manifest = json.loads((output_dir / "manifest.json").read_text())
    parsed = []
    for shard in manifest["shards"]:
        for serialized in tf.data.TFRecordDataset(str(output_dir / shard["file"])):
            parsed.append(dict(parse_example_numpy(serialized.numpy()), _shard=shard["file"],
                               _split=shard["split"]))
    return parsed


def shard_bytes(output_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(output_dir.glob("[!.]*.tfrecord"))}


def _convert(annotations, images, out, **kw):
    kw.setdefault("num_workers", 1)
    kw.setdefault("progress", False)
    kw.setdefault("crop_size", 64)
    kw.setdefault("num_shards", {"train": 2, "val": 1})
    return conv.convert(annotations, images, out, **kw)


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------

def test_every_feature_round_trips_through_the_schema(tmp_path):
    from kpt_tf.data.schema import FEATURES

    annotations, images, source = make_dataset(tmp_path / "data")
    out = tmp_path / "records"
    manifest = _convert(annotations, images, out, crop_size=96, crop_margin=1.5)
    by_split = {"train": [r for r in source if not r["isValidation"]],
                "val": [r for r in source if r["isValidation"]]}
    records = read_records(out)
    assert len(records) == len(source) == sum(s["written"] for s in manifest["splits"].values())
    for split in ("train", "val"):
        order = [int(r["person/dataset_index"]) for r in records if r["_split"] == split]
        assert order == list(range(len(by_split[split])))  # file order, every person written
    for r in records:
        assert set(FEATURES) <= set(r)
        src = by_split[r["_split"]][int(r["person/dataset_index"])]
        assert r["image"].shape == (96, 96, 3) and int(r["image/crop_size"]) == 96
        assert r["image/id"].decode() == src["img_paths"]
        assert r["image/original_size"].tolist() == [240, 320]
        assert int(r["person/index"]) == int(src["people_index"]) - 1
        center, scale = geometry.adjust_person_box(np.array(src["objpos"]) - 1.0, src["scale_provided"])
        np.testing.assert_allclose(r["person/center"], center, atol=1e-4)
        np.testing.assert_allclose(r["person/scale"], scale, rtol=1e-6)
        np.testing.assert_allclose(r["person/crop_margin"], 1.5)
        rows = np.array(src["joint_self"])
        annotated = ~((rows[:, 0] == 0) & (rows[:, 1] == 0))
        np.testing.assert_array_equal(r["joints/annotated"], annotated.astype(int))
        np.testing.assert_array_equal(r["joints/visible"], (annotated & (rows[:, 2] > 0)).astype(int))
        to_crop = geometry.crop_affine(center, scale, 96, 1.5)
        expected_xy = np.where(annotated[:, None], geometry.apply_affine(to_crop, rows[:, :2] - 1.0), 0.0)
        np.testing.assert_allclose(r["joints/xy"], expected_xy, atol=2e-3)
        np.testing.assert_allclose(r["crop/to_image"], geometry.invert_affine(to_crop), rtol=1e-6, atol=1e-3)
        if "headbox" in src:
            assert int(r["head/has_box"]) == 1
            np.testing.assert_allclose(r["head/box"], np.ravel(src["headbox"]) - 1.0, atol=1e-3)
        else:
            assert int(r["head/has_box"]) == 0 and not r["head/box"].any()
    # Shards hold contiguous blocks of their split, and the manifest says how many and which.
    for shard in manifest["shards"]:
        indices = [int(r["person/dataset_index"]) for r in records if r["_shard"] == shard["file"]]
        assert indices == list(range(*shard["people"])) and len(indices) == shard["records"]


@pytest.mark.parametrize("reduced_decode", [True, False])
def test_crop_pixels_and_joints_agree_and_invert(tmp_path, reduced_decode):
    """A bright dot drawn at each joint lands at the record's joint position; crop -> image inverts it."""
    rng = np.random.default_rng(1)
    height, width = 1200, 1600
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width), np.float64)
    records = []
    # Two people sharing a crop centre: each one's dots fall between the other's.
    for p, (scale, objpos) in enumerate([(5.0, (700.0, 420.0)), (1.2, (700.0, 420.0 + 15 * 3.8))]):
        crop_px = geometry.PERSON_BOX_PIXELS * 1.25 * scale * 1.5 / 96  # source px per crop px
        center = np.array(objpos) + [0.0, 15 * scale]  # the adjusted box centre = the crop centre
        offsets = {0: (-20, -20), 4: (20, -20), 8: (-20, 20), 12: (20, 20)}  # crop pixels, well apart
        joints = []
        for j in range(16):
            if j not in offsets:  # unannotated
                joints.append([0.0, 0.0, 0.0])
                continue
            x, y = center + (np.array(offsets[j]) + rng.uniform(-0.5, 0.5, 2)) * crop_px
            image += 255 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * (2.5 * crop_px) ** 2))
            joints.append([x + 1.0, y + 1.0, 1.0])  # the file is 1-based
        records.append({"isValidation": 0.0, "img_paths": "big.jpg", "objpos": [objpos[0] + 1, objpos[1] + 1],
                        "joint_self": joints, "scale_provided": scale, "annolist_index": 1.0,
                        "people_index": float(p + 1)})
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "big.jpg"), np.repeat(np.clip(image, 0, 255)[..., None], 3, 2)
                .astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 98])
    (tmp_path / "ann.json").write_text(json.dumps(records))
    out = tmp_path / "out"
    _convert(tmp_path / "ann.json", tmp_path / "images", out, crop_size=96, num_shards=1, splits="train",
             reduced_decode=reduced_decode)
    records_out = read_records(out)
    assert len(records_out) == 2
    for r, src in zip(records_out, records):
        crop = r["image"][..., 1].astype(np.float64)
        for j in np.where(r["joints/annotated"] == 1)[0]:
            x, y = r["joints/xy"][j]
            x0, y0 = int(round(x)), int(round(y))
            patch = crop[y0 - 7:y0 + 8, x0 - 7:x0 + 8]
            weights = np.clip(patch - np.median(crop), 0, None) ** 2
            py, px = np.mgrid[y0 - 7:y0 + 8, x0 - 7:x0 + 8]
            centroid = np.array([(weights * px).sum(), (weights * py).sum()]) / weights.sum()
            assert np.abs(centroid - [x, y]).max() < 0.1, (j, centroid, (x, y))
            # crop -> image through the stored float32 affine recovers the 0-based source joint
            back = geometry.apply_affine(r["crop/to_image"], r["joints/xy"][j])
            np.testing.assert_allclose(back, np.array(src["joint_self"][j][:2]) - 1.0, atol=1e-3)


def test_image_to_crop_to_image_is_exact_in_float64():
    rng = np.random.default_rng(2)
    for _ in range(20):
        center, scale = geometry.adjust_person_box(rng.uniform(0, 1900, 2), rng.uniform(0.4, 25))
        to_crop = geometry.crop_affine(center, scale, 384, 1.5)
        points = rng.uniform(-200, 2100, (16, 2))
        back = geometry.apply_affine(geometry.invert_affine(to_crop), geometry.apply_affine(to_crop, points))
        np.testing.assert_allclose(back, points, atol=1e-6)


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_dimensions_read_from_the_header(progressive):
    image = np.zeros((37, 53, 3), np.uint8)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
    assert crops.jpeg_dimensions(data.tobytes()) == (37, 53)
    assert crops.jpeg_dimensions(b"\x89PNG\r\n") is None


# --------------------------------------------------------------------------------------------------
# Skips, counts, fatal errors
# --------------------------------------------------------------------------------------------------

def test_unusable_people_are_counted_skips_not_failures(tmp_path):
    annotations, images, source = make_dataset(tmp_path / "data", num_images=6, val_every=0)
    source[0]["objpos"] = [-1.0, -1.0]
    source[1]["scale_provided"] = 0.0
    source[2]["joint_self"] = [[0.0, 0.0, 0.0]] * 16
    (images / source[4]["img_paths"]).unlink()                     # image 3 (people 4 and 5) missing
    (images / source[6]["img_paths"]).write_bytes(b"not a jpeg")  # image 4 (person 6) undecodable
    annotations.write_text(json.dumps(source))
    manifest = _convert(annotations, images, tmp_path / "out")
    reasons = {s["dataset_index"]: s["reason"] for s in manifest["skipped"]}
    # people per image alternate 1, 2: images 0..5 hold people [0], [1, 2], [3], [4, 5], [6], [7, 8]
    assert reasons == {0: "objpos missing, -1 or not finite", 1: "scale <= 0", 2: "no annotated joint",
                       4: "image file missing", 5: "image file missing", 6: "image not a JPEG"}
    train = manifest["splits"]["train"]
    assert train["read"] == len(source) == train["written"] + train["skipped"]
    assert train["skipped"] == 6 and manifest["splits"]["val"] == {"read": 0, "written": 0, "skipped": 0,
                                                                  "num_shards": 1}
    written = sorted(int(r["person/dataset_index"]) for r in read_records(tmp_path / "out"))
    assert written == [i for i in range(len(source)) if i not in reasons]  # gaps keep the GT order


@pytest.mark.parametrize("case, message", [
    ("missing_annotations", "does not exist"),
    ("bad_json", "not readable JSON"),
    ("json_not_a_list", "expected a list"),
    ("missing_images_dir", "is not a directory"),
    ("unknown_split", "unknown split"),
    ("zero_shards", "must be >= 1"),
    ("small_margin", "--crop_margin"),
    ("bad_quality", "--jpeg_quality"),
])
def test_fatal_inputs_are_refused_with_a_clear_message(tmp_path, case, message):
    annotations, images, _ = make_dataset(tmp_path / "data", num_images=2)
    kw = {}
    if case == "missing_annotations":
        annotations = tmp_path / "nope.json"
    elif case == "bad_json":
        annotations.write_text('[{"img_paths": ')
    elif case == "json_not_a_list":
        annotations.write_text('{"a": 1}')
    elif case == "missing_images_dir":
        images = tmp_path / "no_images"
    elif case == "unknown_split":
        kw["splits"] = "train,tset"
    elif case == "zero_shards":
        kw["num_shards"] = "train=0"
    elif case == "small_margin":
        kw["crop_margin"] = 0.5
    elif case == "bad_quality":
        kw["jpeg_quality"] = 101
    with pytest.raises(conv.ConversionError, match=message):
        _convert(annotations, images, tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


def test_cli_reports_bad_input_without_traceback(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-m", "data_prep.mpii_to_tfrecord", "--annotations", str(tmp_path / "missing.json"),
         "--images_dir", str(tmp_path), "--output_dir", str(tmp_path / "out")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "missing.json does not exist" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------------
# Determinism, interruption, resumption
# --------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_reruns_in_other_processes_and_worker_counts_give_identical_bytes(tmp_path):
    annotations, images, _ = make_dataset(tmp_path / "data", num_images=8)
    first = _convert(annotations, images, tmp_path / "a", num_workers=1)
    # Another process (another string-hash seed: protobuf map order must not leak into the bytes), 2 workers.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONHASHSEED="12345")
    subprocess.run([sys.executable, "-m", "data_prep.mpii_to_tfrecord", "--annotations", str(annotations),
                    "--images_dir", str(images), "--output_dir", str(tmp_path / "b"), "--crop_size", "64",
                    "--num_shards", "train=2,val=1", "--num_workers", "2", "--noprogress"],
                   cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
    second = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b") != {}
    assert first["shards"] == second["shards"] and first["content"] == second["content"]


def test_interrupted_run_resumes_and_redoes_only_missing_shards(tmp_path, monkeypatch):
    annotations, images, _ = make_dataset(tmp_path / "data", num_images=10)
    shards = {"train": 4, "val": 2}
    _convert(annotations, images, tmp_path / "reference", num_shards=shards)
    reference = shard_bytes(tmp_path / "reference")
    out = tmp_path / "out"

    publish = ShardWriter.publish
    published = []

    def publish_then_die(self):
        if len(published) == 2:
            raise KeyboardInterrupt  # as if the run were killed while the third shard was being finished
        published.append(self.plan.file)
        return publish(self)

    monkeypatch.setattr(ShardWriter, "publish", publish_then_die)
    with pytest.raises(KeyboardInterrupt):
        _convert(annotations, images, out, num_shards=shards)
    monkeypatch.setattr(ShardWriter, "publish", publish)
    partial = json.loads((out / "manifest.json").read_text())
    assert partial["complete"] is False and [s["file"] for s in partial["shards"]] == sorted(published)
    assert sorted(p.name for p in out.glob("[!.]*.tfrecord")) == sorted(published)
    # An interrupted run removes its unfinished .tmp shards on the way out (a SIGKILL leaves them: the kill tests)
    assert not list(out.glob(TMP_PREFIX + "*.tfrecord"))
    stamps = {name: (out / name).stat().st_mtime_ns for name in published}

    manifest = _convert(annotations, images, out, num_shards=shards)
    assert manifest["complete"] is True
    assert shard_bytes(out) == reference
    assert {name: (out / name).stat().st_mtime_ns for name in published} == stamps  # kept, not redone
    assert not list(out.glob(TMP_PREFIX + "*"))

    # A damaged shard and a deleted one are redone; the others are kept.
    damaged, deleted, *kept = sorted(reference)
    with open(out / damaged, "ab") as f:
        f.write(b"\0")
    (out / deleted).unlink()
    stamps = {name: (out / name).stat().st_mtime_ns for name in kept}
    _convert(annotations, images, out, num_shards=shards)
    assert shard_bytes(out) == reference
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == stamps


def make_straddling_dataset(root: Path, num_images: int, seed: int = 7):
    """Large images, each holding a small and then a large person (consecutive in the file): a shard boundary
    between them makes the image's reduced JPEG decode depend on the people of both shards (issue 12, case 8)."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(num_images):
        cv2.imwrite(str(images / f"{i:09d}.jpg"), _texture(rng, 960, 1280), [cv2.IMWRITE_JPEG_QUALITY, 90])
        for p, scale in enumerate((0.6, 3.0)):
            records.append(_person(rng, 1280, 960, False, i, p, scale=scale))
    annotations = root / "annotations.json"
    annotations.write_text(json.dumps(records))
    return annotations, images, records


def test_rerun_of_one_shard_decodes_a_shared_image_as_the_full_run_did(tmp_path):
    """Image 1's small person ends shard 0, its large one starts shard 1; redoing shard 1 alone must not decode
    the image at the large person's reduction (8) instead of the pair's (2)."""
    annotations, images, _ = make_straddling_dataset(tmp_path / "data", num_images=5)
    settings = crops.CropSettings(64, 1.5, 95, True)
    # person boxes of MPII scale 3.0 and 0.6 (x 1.25, the crop's box: kpt_tf.mpii.person.person_box)
    big, small = (crops.CropJob(("train", 0), "x", 0, (600.0, 400.0), 1.25 * s, (), (), (), None) for s in (3.0, 0.6))
    assert crops.decode_factor([big], settings) == 8 and crops.decode_factor([big, small], settings) == 2
    shards = {"train": 3}
    _convert(annotations, images, tmp_path / "reference", splits="train", num_shards=shards)
    reference = shard_bytes(tmp_path / "reference")
    (tmp_path / "reference" / sorted(reference)[1]).unlink()
    _convert(annotations, images, tmp_path / "reference", splits="train", num_shards=shards)
    assert shard_bytes(tmp_path / "reference") == reference


def _cli_convert(annotations, images, out, num_shards):
    return subprocess.Popen(
        [sys.executable, "-m", "data_prep.mpii_to_tfrecord", "--annotations", str(annotations), "--images_dir",
         str(images), "--output_dir", str(out), "--crop_size", "128", "--splits", "train", "--num_shards",
         f"train={num_shards}", "--num_workers", "1", "--noprogress"],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)


def _manifest_stamp(manifest: Path):
    return manifest.stat().st_mtime_ns if manifest.is_file() else None


def _wait_for_new_manifest(process, manifest: Path, before, complete: bool = False):
    """Wait until the run writes its manifest (its first write: it then starts writing shards; or, with
    `complete`, its last)."""
    while True:
        stamp = _manifest_stamp(manifest)
        if stamp != before and (not complete or json.loads(manifest.read_text())["complete"]):
            return
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.01)


@pytest.mark.slow
def test_sigkill_at_seeded_random_moments_then_rerun_gives_identical_shards(tmp_path):
    """SIGKILL (a real signal to the converter process) at several seeded random moments of shard writing, each
    rerun continuing the last: what is under a final name is always whole, and the final rerun's shards and
    manifest equal an uninterrupted run's. The images straddle shard boundaries with reduced decoding on."""
    annotations, images, _ = make_straddling_dataset(tmp_path / "data", num_images=120)
    num_shards = 16   # 240 people: 15 per shard; every other boundary splits an image
    reference_dir = tmp_path / "reference"
    process = _cli_convert(annotations, images, reference_dir, num_shards)
    _wait_for_new_manifest(process, reference_dir / "manifest.json", None)
    started = time.time()
    _wait_for_new_manifest(process, reference_dir / "manifest.json", _manifest_stamp(reference_dir / "manifest.json"),
                           complete=True)
    writing_seconds = time.time() - started
    assert process.wait(timeout=300) == 0, process.stderr.read().decode()
    reference = shard_bytes(reference_dir)
    reference_manifest = json.loads((reference_dir / "manifest.json").read_text())
    assert len(reference) == num_shards

    out = tmp_path / "out"
    rng = np.random.default_rng(20261203)
    progress = []
    for fraction in rng.uniform(0.1, 0.3, size=3):   # of the uninterrupted run's shard-writing time
        process = _cli_convert(annotations, images, out, num_shards)
        _wait_for_new_manifest(process, out / "manifest.json", _manifest_stamp(out / "manifest.json"))
        time.sleep(fraction * writing_seconds)
        process.kill()
        assert process.wait(timeout=60) == -signal.SIGKILL
        finished = shard_bytes(out)
        assert all(data == reference[name] for name, data in finished.items()), (
            "a shard under its final name differs from the uninterrupted run's")
        listed = json.loads((out / "manifest.json").read_text())
        assert listed["complete"] is False and {s["file"] for s in listed["shards"]} <= set(finished)
        progress.append(len(listed["shards"]))
    assert progress == sorted(progress) and 0 < progress[-1] < num_shards, progress

    process = _cli_convert(annotations, images, out, num_shards)
    assert process.wait(timeout=300) == 0, process.stderr.read().decode()
    assert shard_bytes(out) == reference
    final_manifest = json.loads((out / "manifest.json").read_text())
    assert final_manifest["complete"] is True and final_manifest["shards"] == reference_manifest["shards"]
    assert not list(out.glob(TMP_PREFIX + "*"))


def test_rerun_with_other_settings_is_refused_and_loses_nothing(tmp_path):
    annotations, images, _ = make_dataset(tmp_path / "data", num_images=3)
    _convert(annotations, images, tmp_path / "out")
    before = shard_bytes(tmp_path / "out")
    with pytest.raises(conv.ConversionError, match="crop_size"):
        _convert(annotations, images, tmp_path / "out", crop_size=80)
    with pytest.raises(conv.ConversionError, match="shards"):
        _convert(annotations, images, tmp_path / "out", num_shards={"train": 3, "val": 1})
    assert shard_bytes(tmp_path / "out") == before


def test_max_people_takes_the_first_people_of_each_split(tmp_path):
    annotations, images, source = make_dataset(tmp_path / "data", num_images=9)
    manifest = _convert(annotations, images, tmp_path / "out", max_people=2)
    assert {s: v["read"] for s, v in manifest["splits"].items()} == {"train": 2, "val": 2}
    records = read_records(tmp_path / "out")
    assert sorted((r["_split"], int(r["person/dataset_index"])) for r in records) == [
        ("train", 0), ("train", 1), ("val", 0), ("val", 1)]


# --------------------------------------------------------------------------------------------------
# The official release .mat
# --------------------------------------------------------------------------------------------------


# The release .mat's reader: tests/kpt_tf/mpii/test_annotations.py

def test_release_mat_people_convert_with_their_head_boxes(tmp_path):
    path = tmp_path / "mpii_human_pose_v1_u12_1.mat"
    write_release_mat(path)
    # End to end: the release's head boxes reach the records; unusable people are counted skips.
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(images / name), _texture(rng, 300, 400))
    manifest = _convert(path, images, tmp_path / "out", splits="train", num_shards=1)
    assert manifest["splits"]["train"] == {"read": 4, "written": 2, "skipped": 2, "num_shards": 1}
    assert {s["reason"] for s in manifest["skipped"]} == {"no annotated joint", "objpos missing, -1 or not finite"}
    records = read_records(tmp_path / "out")
    assert all(int(r["head/has_box"]) == 1 for r in records)
    np.testing.assert_allclose(records[0]["head/box"], [89, 39, 119, 74])



# --------------------------------------------------------------------------------------------------
# Validation head boxes (--val_gt)
# --------------------------------------------------------------------------------------------------

def _write_gt_mat(path: Path, records: list[dict]):
    n = len(records)
    pos = np.zeros((16, 2, n))
    missing = np.zeros((16, n), np.uint8)
    boxes = np.zeros((2, 2, n))
    for k, r in enumerate(records):
        rows = np.array(r["joint_self"])
        absent = (rows[:, 0] == 0) & (rows[:, 1] == 0)
        pos[:, :, k] = np.where(absent[:, None], 0.0, rows[:, :2])
        missing[:, k] = absent
        boxes[:, :, k] = [[k + 10.0, k + 20.0], [k + 40.0, k + 60.0]]
    scipy.io.savemat(str(path), {"pos_gt_src": pos, "jnt_missing": missing, "headboxes_src": boxes})


def test_val_gt_head_boxes_are_attached_in_order_or_refused(tmp_path):
    annotations, images, source = make_dataset(tmp_path / "data", num_images=6, val_every=2)
    for r in source:
        r.pop("headbox", None)
    annotations.write_text(json.dumps(source))
    val = [r for r in source if r["isValidation"]]
    gt = tmp_path / "gt.mat"
    _write_gt_mat(gt, val)
    _convert(annotations, images, tmp_path / "out", val_gt=gt)
    records = read_records(tmp_path / "out")
    for r in records:
        k = int(r["person/dataset_index"])
        if r["_split"] == "val":
            assert int(r["head/has_box"]) == 1
            np.testing.assert_allclose(r["head/box"], [k + 9, k + 19, k + 39, k + 59])
        else:
            assert int(r["head/has_box"]) == 0

    _write_gt_mat(gt, val[::-1])
    with pytest.raises(conv.ConversionError, match="does not match"):
        _convert(annotations, images, tmp_path / "out2", val_gt=gt)
    _write_gt_mat(gt, val[:-1])
    with pytest.raises(conv.ConversionError, match=f"has {len(val) - 1} people"):
        _convert(annotations, images, tmp_path / "out3", val_gt=gt)
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()



# --------------------------------------------------------------------------------------------------
# Integration with the generator (data_prep.synth)
# --------------------------------------------------------------------------------------------------

def _run_generator(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run([sys.executable, "-m", "data_prep.synth", *args], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=120)


def test_converts_a_generated_data_set_with_its_validation_gt(tmp_path):
    synth = tmp_path / "synth"
    _run_generator("--output_dir", str(synth), "--num_train", "20", "--num_val", "6", "--seed", "3",
                   "--num_workers", "1")
    source = json.loads((synth / "annotations.json").read_text())
    manifest = _convert(synth / "annotations.json", synth / "images", tmp_path / "out",
                        val_gt=synth / "gt_val.mat", crop_size=96)
    assert {s: (v["read"], v["written"]) for s, v in manifest["splits"].items()} == {"train": (20, 20),
                                                                                      "val": (6, 6)}
    val = [r for r in source if r["isValidation"]]
    for r in read_records(tmp_path / "out"):
        assert r["image"].shape == (96, 96, 3)
        if r["_split"] == "val":
            src = val[int(r["person/dataset_index"])]
            assert int(r["head/has_box"]) == 1
            np.testing.assert_allclose(r["head/box"], np.ravel(src["headbox"]) - 1.0, atol=1e-3)


def test_converts_figures_rendered_at_real_mpii_poses(tmp_path):
    shared = _require_shared()
    synth = tmp_path / "synth"
    _run_generator("--output_dir", str(synth), "--from_annotations", str(shared / "mpii_annotations.json.gz"),
                   "--max_people", "40", "--num_workers", "1")
    source = json.loads((synth / "annotations.json").read_text())
    manifest = _convert(synth / "annotations.json", synth / "images", tmp_path / "out", crop_size=96,
                        num_workers=2, val_gt=synth / "gt_val.mat")
    expected_val = sum(1 for r in source if r["isValidation"])
    assert len(source) == 40 and 0 < expected_val < 40
    assert manifest["splits"]["val"]["read"] == expected_val
    assert manifest["splits"]["train"]["read"] == 40 - expected_val
    for counts in manifest["splits"].values():
        assert counts["read"] == counts["written"] + counts["skipped"]
    sizes = {r["img_paths"]: [int(r["img_height"]), int(r["img_width"])] for r in source}
    records = read_records(tmp_path / "out")
    assert len(records) == sum(v["written"] for v in manifest["splits"].values())
    for r in records:
        assert r["image/original_size"].tolist() == sizes[r["image/id"].decode()]


def test_release_test_people_become_records_without_joints(tmp_path):
    from tests.kpt_tf.mpii.test_submission import release_test_people, write_release_with_test_people

    release = write_release_with_test_people(tmp_path / "mpii_human_pose_v1_u12_1.mat", tmp_path / "images")
    manifest = _convert(release, tmp_path / "images", tmp_path / "out", num_shards={"train": 1, "val": 1, "test": 1})
    assert list(manifest["splits"]) == ["train", "val", "test"]          # test: because the file holds test people
    assert manifest["splits"]["test"] == {"read": 4, "written": 4, "skipped": 0, "num_shards": 1}
    records = [r for r in read_records(tmp_path / "out") if r["_split"] == "test"]
    for r, (image, _, person_index, objpos, scale) in zip(records, release_test_people()):
        assert r["image/id"].decode() == image and int(r["person/index"]) == person_index
        center, adjusted = geometry.adjust_person_box(objpos, scale)
        np.testing.assert_allclose(r["person/center"], center, atol=1e-4)
        np.testing.assert_allclose(r["person/scale"], adjusted, rtol=1e-6)
        assert not r["joints/annotated"].any() and not r["joints/xy"].any() and int(r["head/has_box"]) == 0
    # a file without test people converts train and val as before
    annotations, images, _ = make_dataset(tmp_path / "data", num_images=3)
    assert list(_convert(annotations, images, tmp_path / "out2")["splits"]) == ["train", "val"]


def test_skips_are_summarised_one_line_per_reason():
    skipped = [{"reason": "image file missing", "image": f"{i // 2:09d}.jpg", "person": i % 2} for i in range(25000)]
    skipped += [{"reason": "scale <= 0", "image": "a.jpg", "person": 3}]
    lines = skip_summary(skipped)
    assert lines == ["  skipped, image file missing: 25000 people of 12500 images (000000000.jpg person 0, "
                     "000000000.jpg person 1, 000000001.jpg person 0, ...)",
                     "  skipped, scale <= 0: 1 people of 1 images (a.jpg person 3)"]

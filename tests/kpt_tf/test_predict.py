"""kpt_tf.predict: person box -> crop -> heatmaps -> image pixels on photos, folders and videos; its outputs and its
refusals."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from kpt_tf.codec import HeatmapCodec
from kpt_tf.detect import BoxesFile, WholeImage
from kpt_tf.joints import JointSubset
from kpt_tf.predict import PREDICTIONS, Predictor, predict_files
from tests.conftest import REPO, require_shared_mpii

ALL = JointSubset.parse("all")


def brightest_pixel_predictor(size=64, batch_size=2):
    """A stand-in network whose every heatmap peaks at the crop's brightest pixel (heatmap = input resolution), so
    the keypoints say where the crop put that pixel: the geometry is tested without a trained network."""
    def heatmaps(crops):
        crops = np.asarray(crops)
        out = np.zeros((len(crops), size, size, len(ALL)), np.float32)
        for k, crop in enumerate(crops):
            y, x = np.unravel_index(np.argmax(crop.sum(-1)), crop.shape[:2])
            out[k, y, x, :] = 1.0
        return out

    return Predictor(heatmaps, HeatmapCodec(input_size=size, heatmap_size=size, sigma=1.0), ALL, size, "stand-in",
                     batch_size=batch_size)


def image_with_dot(height, width, x, y):
    image = np.zeros((height, width, 3), np.uint8)
    image[y - 1:y + 2, x - 1:x + 2] = 255
    return image


def test_keypoints_come_back_in_image_pixels_for_every_person_of_every_image():
    predictor = brightest_pixel_predictor()
    first, second = image_with_dot(200, 300, 120, 90), image_with_dot(240, 180, 40, 170)
    # Three people over two images and a batch of 2: crops of one call come from both images.
    boxes = [np.array([[60, 40, 180, 200], [100, 60, 160, 130]], np.float32), np.array([[0, 100, 90, 230]], np.float32)]
    people = predictor.predict_many([first, second], boxes, [np.array([0.9, 0.5]), None])
    assert [len(p) for p in people] == [2, 1]
    # one crop pixel is 200 * 1.25 * longer side / 64 image pixels: half of it is the rounding of the dot's position
    for person, dot in zip(people[0] + people[1], [(120, 90), (120, 90), (40, 170)]):
        side = 1.25 * float(max(person.box[2] - person.box[0], person.box[3] - person.box[1]))
        np.testing.assert_allclose(person.keypoints, np.tile(dot, (16, 1)), atol=0.5 * side / 64 + 0.5)
        assert person.joint_names == ALL.names and person.scores.shape == (16,)
    assert [p.box_score for p in people[0]] == pytest.approx([0.9, 0.5]) and people[1][0].box_score == 1.0
    whole = predictor.predict(second)                      # no boxes: the whole image is the person
    np.testing.assert_allclose(whole[0].box, [0, 0, 179, 239])
    with pytest.raises(ValueError, match="x2 > x1"):
        predictor.predict(first, np.array([[10, 10, 5, 50]]))
    with pytest.raises(ValueError, match="more than 4 times as large as its 300 x 200 image"):
        predictor.predict(first, np.array([[-1e30, -1e30, 1e30, 1e30]]))
    with pytest.raises(ValueError, match="RGB uint8"):
        predictor.predict(first.astype(np.float32))


def test_the_crop_is_the_one_the_serving_graph_cuts():
    """The client-side crop (cv2) against the exported graph's (ImageProjectiveTransformV3 with the same affine)."""
    import tensorflow as tf

    from kpt_tf import geometry

    rgb = np.random.default_rng(0).integers(0, 256, (120, 160, 3)).astype(np.uint8)
    boxes = np.array([[20, 10, 90, 110], [100, 40, 158, 119]], np.float32)
    crops, affines = brightest_pixel_predictor().crops(rgb, boxes)
    centers, scales = geometry.box_center_scale(boxes, backend="tf")
    to_image = geometry.invert_affine(geometry.crop_affine(centers, scales, 64, backend="tf"), backend="tf")
    served = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(np.repeat(rgb[None], 2, 0), tf.float32), transforms=geometry.to_projective_rows(to_image, "tf"),
        output_shape=[64, 64], fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT").numpy()
    inside = served.sum(-1) > 0        # the two differ also in how a sample straddling the border is filled
    difference = np.abs(crops - served)[inside]
    # Same sample points; cv2 rounds them to 1/32 px (INTER_BITS 5): on this pixel noise, whose neighbours differ by
    # up to 255, that is at most 255 x 2 / 64 ~ 8 grey levels, under 1 on average.
    assert difference.mean() < 1.0 and difference.max() <= 8.5, (difference.mean(), difference.max())


def mpii_people():
    """The five real photographs and their annotated person (mmpose's json: centre, scale, 16 joints 0-based)."""
    shared = require_shared_mpii()
    people = json.loads((shared / "mmpose_test_mpii.json").read_text())
    return shared / "images", people


def person_box(person):
    """x1, y1, x2, y2 of the annotated person's box (the README picture's boxes: tools.real_photos_figure)."""
    from tools.real_photos_figure import annotated_boxes

    x, y, w, h = annotated_boxes([person])[0]["bbox"]
    return [x, y, x + w, y + h]


def test_real_photographs_crop_around_their_annotated_people():
    images, people = mpii_people()
    predictor = brightest_pixel_predictor(size=256)
    for person in people:
        rgb = cv2.cvtColor(cv2.imread(str(images / person["image"])), cv2.COLOR_BGR2RGB)
        _, affines = predictor.crops(rgb, np.array([person_box(person)], np.float32))
        joints = np.asarray(person["joints"], np.float64)[np.asarray(person["joints_vis"]) > 0] - 1.0  # 1-based
        in_crop = joints @ affines[0][:, :2].T + affines[0][:, 2]
        # MPII's adjusted box holds the whole person: every annotated joint lands inside the 256-px crop
        assert np.all((in_crop > 0) & (in_crop < 255)), person["image"]


@pytest.mark.slow
def test_predict_on_real_photographs_with_a_boxes_file_and_without(trained_workdir, tmp_path):
    images, people = mpii_people()
    from tools.real_photos_figure import annotated_boxes

    detections = [dict(entry, score=0.9) for entry in annotated_boxes(people)]
    boxes_path = tmp_path / "boxes.json"
    boxes_path.write_text(json.dumps(detections))
    predictor = Predictor.load(trained_workdir)
    result = predict_files(predictor, sorted(images.glob("*.jpg")), tmp_path / "out", BoxesFile(boxes_path),
                           progress=False)
    assert [r["file"] for r in result["images"]] == sorted(p["image"] for p in people)
    for record in result["images"]:
        (person,) = record["people"]
        assert len(person["keypoints"]) == 16 and len(person["scores"]) == 16 and person["box_score"] == 0.9
        assert person["joint_names"][0] == "right_ankle"
        drawn = cv2.imread(str(tmp_path / "out" / record["file"]))
        assert drawn.shape == cv2.imread(str(images / record["file"])).shape
    assert json.loads((tmp_path / "out" / PREDICTIONS).read_text())["summary"]["people"] == 5
    whole = predict_files(predictor, sorted(images.glob("*.jpg")), tmp_path / "whole", detector=WholeImage(),
                          draw=False, progress=False)
    assert [len(r["people"]) for r in whole["images"]] == [1] * 5 and not list((tmp_path / "whole").glob("*.jpg"))


def write_video(path, frames, fps=10.0):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "kpt_tf.predict", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_a_video_keeps_its_frames_rate_and_size_and_a_bad_image_is_a_counted_skip(trained_workdir, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(1)
    write_video(inputs / "clip.mp4", [rng.integers(0, 256, (72, 96, 3)).astype(np.uint8) for _ in range(7)], fps=12)
    cv2.imwrite(str(inputs / "photo.jpg"), rng.integers(0, 256, (80, 60, 3)).astype(np.uint8))
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    done = run_cli("--model", trained_workdir, "--input", inputs, "--out", tmp_path / "out", "--detector", "none")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipped broken.jpg: cannot be decoded" in done.stderr
    assert "8 images/frames, 8 people, 1 skipped" in done.stdout
    out = tmp_path / "out"
    video = cv2.VideoCapture(str(out / "clip.mp4"))
    assert (int(video.get(cv2.CAP_PROP_FRAME_COUNT)), video.get(cv2.CAP_PROP_FPS)) == (7, 12.0)
    assert (int(video.get(cv2.CAP_PROP_FRAME_WIDTH)), int(video.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (96, 72)
    result = json.loads((out / PREDICTIONS).read_text())
    assert [r.get("frame") for r in result["images"] if r["file"] == "clip.mp4"] == list(range(7))
    assert result["skipped"] == [{"file": "broken.jpg", "reason": "cannot be decoded as an image"}]
    assert (out / "photo.jpg").is_file() and not (out / "broken.jpg").exists()


@pytest.mark.slow
def test_a_bad_boxes_file_or_a_foreign_out_directory_is_refused_before_anything_is_written(trained_workdir, tmp_path):
    image = tmp_path / "000000000042.jpg"
    cv2.imwrite(str(image), np.full((64, 64, 3), 128, np.uint8))
    cases = {
        "dict.json": ({"annotations": []}, "not a COCO detection-results file"),
        "nobox.json": ([{"image_id": 42, "score": 1.0}], "entry 0: needs image_id and bbox"),
        "badbox.json": ([{"image_id": 42, "bbox": [1, 2, -3, 4]}], r"entry 0: bbox must be 4 finite numbers"),
        "elsewhere.json": ([{"image_id": 7, "bbox": [1, 2, 3, 4]}], "none of its 1 image ids"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(json.dumps(content))
        done = run_cli("--model", trained_workdir, "--input", image, "--out", tmp_path / f"out_{name}",
                       "--boxes", tmp_path / name)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr[-800:]
        assert not (tmp_path / f"out_{name}").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    done = run_cli("--model", trained_workdir, "--input", image, "--out", foreign, "--detector", "none")
    assert done.returncode == 2 and "not an earlier kpt_tf.predict output (holds thesis.tex)" in done.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]


def test_the_real_annotation_file_and_mmpose_json_name_the_same_photographs():
    """The photographs' people are MPII validation people in both files (what the real-photo tests rely on)."""
    shared = require_shared_mpii()
    _, people = mpii_people()
    bearpaw = json.loads(gzip.decompress((shared / "mpii_annotations.json.gz").read_bytes()))
    names = {p["image"] for p in people}
    assert names == {p.name for p in (shared / "images").glob("*.jpg")}
    assert names <= {p["img_paths"] for p in bearpaw}

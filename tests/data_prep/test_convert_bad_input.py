"""The converter on bad images and bad annotations: counted skips with reasons, or a refusal naming the input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from data_prep import mpii_to_tfrecord as conv
from tests.conftest import REPO, file_size_limit
from tests.data_prep.test_convert import _convert, make_dataset, read_records

# people per image alternate 1, 2: images 0..5 hold people [0], [1, 2], [3], [4, 5], [6], [7, 8]


def test_broken_images_are_counted_skips_and_the_rest_converts(tmp_path):
    annotations, images, source = make_dataset(tmp_path / "data", num_images=6, val_every=0)
    (images / source[0]["img_paths"]).write_bytes(b"")                           # zero bytes
    data = (images / source[3]["img_paths"]).read_bytes()
    (images / source[3]["img_paths"]).write_bytes(data[: len(data) // 2])        # truncated JPEG
    import cv2
    import numpy as np

    ok, png = cv2.imencode(".png", np.zeros((240, 320, 3), np.uint8))
    (images / source[6]["img_paths"]).write_bytes(png.tobytes())                 # a PNG named .jpg
    manifest = _convert(annotations, images, tmp_path / "out")
    reasons = {s["dataset_index"]: (s["reason"], s["image"]) for s in manifest["skipped"]}
    assert reasons == {0: ("image file empty (0 bytes)", source[0]["img_paths"]),
                       3: ("image truncated (no JPEG end marker)", source[3]["img_paths"]),
                       6: ("image not a JPEG", source[6]["img_paths"])}
    written = sorted(int(r["person/dataset_index"]) for r in read_records(tmp_path / "out"))
    assert written == [i for i in range(len(source)) if i not in reasons]
    again = _convert(annotations, images, tmp_path / "out")      # a rerun does not stop at them either
    assert again["skipped"] == manifest["skipped"]


def test_bad_coordinates_scales_and_duplicates_are_counted_skips_with_reasons(tmp_path):
    annotations, images, source = make_dataset(tmp_path / "data", num_images=8, val_every=0)
    text = json.dumps(source)
    source = json.loads(text)
    source[0]["joint_self"][3] = [float("nan"), 10.0, 1.0]
    source[1]["joint_self"][5] = [float("inf"), 10.0, 1.0]
    source[2]["scale_provided"] = 1e-9
    source[3]["scale_provided"] = 1e6
    source[4]["joint_self"][2] = [1e6, 1e6, 1.0]
    source[5]["objpos"] = [float("nan"), 100.0]
    source[6]["scale_provided"] = float("nan")
    source.insert(8, dict(source[7]))             # an exact copy of person 7 right after it
    annotations.write_text(json.dumps(source))    # Python's json writes NaN / Infinity, as some tools do
    manifest = _convert(annotations, images, tmp_path / "out")
    reasons = {s["dataset_index"]: s["reason"] for s in manifest["skipped"]}
    assert reasons == {0: "joint coordinates not finite", 1: "joint coordinates not finite",
                       2: "scale outside 0.05..100.0", 3: "scale outside 0.05..100.0",
                       4: "joint farther than 3 person boxes from objpos", 5: "objpos missing, -1 or not finite",
                       6: "scale missing or not finite", 8: "duplicate person record"}
    records = read_records(tmp_path / "out")
    assert 7 in {int(r["person/dataset_index"]) for r in records}
    import numpy as np

    assert all(np.all(np.isfinite(r["joints/xy"])) for r in records)


@pytest.mark.parametrize("case, message", [
    ("empty_list", "holds no people"),
    ("all_images_missing", "none of the 2 images the annotations name is there"),
])
def test_nothing_to_convert_is_refused_before_anything_is_written(tmp_path, case, message):
    annotations, images, _ = make_dataset(tmp_path / "data", num_images=2)
    if case == "empty_list":
        annotations.write_text("[]")
    else:
        for image in images.iterdir():
            image.unlink()
    with pytest.raises(conv.ConversionError, match=message):
        _convert(annotations, images, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def run_converter(annotations, images, out, crop_size: int = 64, preexec_fn=None):
    return subprocess.run(
        [sys.executable, "-m", "data_prep.mpii_to_tfrecord", "--annotations", str(annotations),
         "--images_dir", str(images), "--output_dir", str(out), "--crop_size", str(crop_size), "--num_workers", "1",
         "--noprogress"],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True, text=True, timeout=120,
        preexec_fn=preexec_fn)


def test_cli_exits_non_zero_when_nothing_converts_and_names_the_skipped_files(tmp_path):
    annotations, images, source = make_dataset(tmp_path / "data", num_images=2, val_every=0)
    for image in images.iterdir():
        image.write_bytes(b"")
    done = run_converter(annotations, images, tmp_path / "out")
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"image file empty (0 bytes): 3 people of 2 images ({source[0]['img_paths']} person 0" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == ("mpii_to_tfrecord: error: no person could be converted "
                                                    "(see the reasons above)")
    (annotations).write_text("[]")
    done = run_converter(annotations, images, tmp_path / "out2")
    assert done.returncode == 2 and "holds no people" in done.stderr and "Traceback" not in done.stderr


def test_an_image_smaller_than_the_crop_converts_with_exact_joints(tmp_path):
    # A 40 x 30 thumbnail whose person box (200 x 0.5 = 100 px) is larger than the image: the crop is mostly
    # border padding, which is how every crop at an image edge is made; the joints must still map back exactly.
    import cv2
    import numpy as np

    from kpt_tf.mpii.coords import from_one_based

    annotations, images, source = make_dataset(tmp_path / "data", num_images=1, val_every=0,
                                                people_per_image=(1,))
    cv2.imwrite(str(images / source[0]["img_paths"]), np.full((30, 40, 3), 128, np.uint8))
    person = source[0]
    person.update(img_width=40.0, img_height=30.0, objpos=[20.0, 15.0], scale_provided=0.5)
    person["joint_self"] = [[20.0 + (j % 4) * 3 - 4, 15.0 + (j // 4) * 3 - 4, 1.0] for j in range(16)]
    person.pop("headbox", None)
    annotations.write_text(json.dumps(source))
    manifest = _convert(annotations, images, tmp_path / "out")
    assert manifest["skipped"] == [] and manifest["splits"]["train"]["written"] == 1
    [record] = read_records(tmp_path / "out")
    xy = np.asarray(record["joints/xy"]).reshape(16, 2)
    to_image = np.asarray(record["crop/to_image"]).reshape(2, 3)
    back = xy @ to_image[:, :2].T + to_image[:, 2]
    np.testing.assert_allclose(back, from_one_based(np.asarray(person["joint_self"])[:, :2]), atol=1e-3)
    assert list(record["image/original_size"]) == [30, 40]


@pytest.mark.slow
def test_a_full_disk_stops_the_converter_clearly_and_a_rerun_finishes(tmp_path):
    annotations, images, _ = make_dataset(tmp_path / "data", num_images=12, val_every=3)
    out = tmp_path / "out"
    whole = run_converter(annotations, images, tmp_path / "whole", crop_size=128)
    assert whole.returncode == 0, whole.stderr[-2000:]
    sizes = sorted(p.stat().st_size for p in (tmp_path / "whole").glob("*.tfrecord"))
    # Writes fail once a file passes the smallest shard's size: the first shard publishes, a later one cannot.
    done = run_converter(annotations, images, out, crop_size=128, preexec_fn=file_size_limit(sizes[0] + 100))
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"mpii_to_tfrecord: error: {out}: cannot write shard data (") and "File too large" in last
    assert "rerun the same command to continue" in last and "Traceback" not in done.stderr
    left = sorted(p.name for p in out.iterdir())
    assert not [n for n in left if n.startswith(".")]               # no .tmp file left behind
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"] and [s["file"] for s in manifest["shards"]] == [
        n for n in left if n.endswith(".tfrecord")]                 # every file on disk is a published shard
    for shard in manifest["shards"]:                                # ... and whole
        assert (out / shard["file"]).read_bytes() == (tmp_path / "whole" / shard["file"]).read_bytes()
    again = run_converter(annotations, images, out, crop_size=128)
    assert again.returncode == 0, again.stderr[-2000:]
    for shard in (tmp_path / "whole").glob("*.tfrecord"):
        assert (out / shard.name).read_bytes() == shard.read_bytes()

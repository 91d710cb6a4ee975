"""data_prep.coco_to_tfrecord: COCO people become coco17 records whose joints map back to the annotation, crowd and
unlabelled people are counted skips, the manifest names the layout, and a rerun keeps the finished shards."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from data_prep import coco_to_tfrecord as coco_conv
from data_prep.conversion import ConversionError
from kpt_tf.coco import CROWD
from kpt_tf.data import manifest as mf
from kpt_tf.layouts import layout
from kpt_tf.mpii.person import person_box

COCO = layout("coco17")


def write_coco_dataset(root, seed=0):
    """Two textured JPEGs and a person_keypoints file: two usable people, a crowd region, an unlabelled person."""
    rng = np.random.default_rng(seed)
    images_dir = root / "val2017"
    images_dir.mkdir(parents=True)
    images = [{"id": 1, "file_name": "000000000001.jpg", "width": 320, "height": 240},
              {"id": 2, "file_name": "000000000002.jpg", "width": 200, "height": 300}]
    for image in images:
        pixels = cv2.resize(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), (image["width"], image["height"]))
        cv2.imwrite(str(images_dir / image["file_name"]), pixels)

    def person(id_, image_id, bbox, labelled, **extra):
        x, y, w, h = bbox
        points = []
        for k in range(len(COCO.joints)):
            v = int(labelled[k]) if k < len(labelled) else 0
            points += [x + (k + 1) * w / 19, y + (k + 1) * h / 19, v] if v else [0, 0, 0]
        return {"id": id_, "image_id": image_id, "category_id": 1, "bbox": bbox, "area": w * h, "iscrowd": 0,
                "num_keypoints": sum(1 for v in labelled if v), "keypoints": points, **extra}

    annotations = [
        person(10, 1, [60, 20, 90, 200], [2, 2, 1, 0, 2] + [2] * 12),
        person(11, 1, [0, 0, 320, 240], [], iscrowd=1),
        person(12, 2, [20, 40, 150, 220], [0] * 5 + [1, 2] * 6),
        person(13, 2, [10, 10, 30, 30], []),
    ]
    path = root / "person_keypoints_val2017.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [
        {"id": 1, "name": "person", "keypoints": list(COCO.joints), "skeleton": []}]}))
    return path, images_dir, annotations


def test_coco_people_become_coco17_records_that_map_back_to_their_keypoints(tmp_path):
    import tensorflow as tf

    from kpt_tf.data import schema
    from kpt_tf.data.records import shard_files

    path, images_dir, annotations = write_coco_dataset(tmp_path / "coco")
    manifest = coco_conv.convert(path, images_dir, tmp_path / "records", num_shards=2, crop_size=96,
                                 progress=False)
    assert manifest[mf.LAYOUT] == "coco17" and mf.records_layout(tmp_path / "records") is COCO
    counts = manifest[mf.SPLITS]["val"]
    assert (counts[mf.SPLIT_READ], counts[mf.SPLIT_WRITTEN], counts[mf.SPLIT_SKIPPED]) == (4, 2, 2)
    assert sorted(s[mf.SKIP_REASON] for s in manifest[mf.SKIPPED]) == [CROWD, "no annotated joint"]

    files = shard_files(tmp_path / "records", "val")
    records = [schema.parse_example_numpy(r.numpy(), COCO) for r in tf.data.TFRecordDataset(files)]
    assert [int(r["person/dataset_index"]) for r in records] == [0, 2]
    for record, annotation in zip(records, (annotations[0], annotations[2])):
        stored = np.asarray(annotation["keypoints"], np.float64).reshape(17, 3)
        labelled = stored[:, 2] > 0
        np.testing.assert_array_equal(record["joints/annotated"], labelled.astype(np.int64))
        np.testing.assert_array_equal(record["joints/visible"], (stored[:, 2] == 2).astype(np.int64))
        to_image = np.asarray(record["crop/to_image"], np.float64).reshape(2, 3)
        crop_xy = np.asarray(record["joints/xy"], np.float64).reshape(17, 2)
        back = crop_xy @ to_image[:, :2].T + to_image[:, 2]
        np.testing.assert_allclose(back[labelled], stored[labelled, :2], atol=1e-2)
        assert record["image/crop_size"] == 96


def test_a_rerun_keeps_the_shards_a_second_split_joins_them_and_bad_inputs_are_refused(tmp_path, capsys):
    path, images_dir, _ = write_coco_dataset(tmp_path / "coco")
    first = coco_conv.convert(path, images_dir, tmp_path / "records", num_shards=2, crop_size=64, progress=False)
    again = coco_conv.convert(path, images_dir, tmp_path / "records", num_shards=2, crop_size=64, progress=False)
    assert first[mf.SHARDS] == again[mf.SHARDS]
    assert "2 complete shard(s) kept from a previous run, 0 to write" in capsys.readouterr().err
    with pytest.raises(ConversionError, match="holds records made with other inputs or settings"):
        coco_conv.convert(path, images_dir, tmp_path / "records", num_shards=2, crop_size=96, progress=False)
    # train and val go into one directory by two runs, each split keeping its own annotation file
    train = path.with_name("person_keypoints_train2017.json")
    train.write_bytes(path.read_bytes())
    both = coco_conv.convert(train, images_dir, tmp_path / "records", num_shards=1, crop_size=64, progress=False)
    assert {s: c[mf.SPLIT_WRITTEN] for s, c in both[mf.SPLITS].items()} == {"train": 2, "val": 2}
    assert [e for e in both[mf.SHARDS] if e[mf.SHARD_SPLIT] == "val"] == first[mf.SHARDS]
    with pytest.raises(ConversionError, match="differs in: splits.train"):
        coco_conv.convert(train, images_dir, tmp_path / "records", num_shards=1, crop_size=64, max_people=1,
                          progress=False)
    renamed = path.with_name("keypoints.json")
    renamed.write_bytes(path.read_bytes())
    with pytest.raises(ConversionError, match="does not say train or val; give --split"):
        coco_conv.convert(renamed, images_dir, tmp_path / "other", progress=False)
    with pytest.raises(ConversionError, match="none of the 2 images the annotations name is there"):
        coco_conv.convert(path, tmp_path, tmp_path / "other", progress=False)


def test_the_crop_is_built_around_hrnets_box(tmp_path):
    from kpt_tf.coco import read_coco_annotations

    path, _, annotations = write_coco_dataset(tmp_path / "coco")
    person = read_coco_annotations(path, "val")[0]
    center, scale = person_box(person)
    x, y, w, h = annotations[0]["bbox"]        # inside the image: the clean box is (x, y, x + w - 1, y + h - 1)
    np.testing.assert_allclose(center, [x + (w - 1) / 2, y + (h - 1) / 2])
    assert scale == pytest.approx(1.25 * (h - 1) / 200)

"""The record schema (kpt_tf.data.schema): MPII records are byte-identical to those written before keypoint layouts
existed; a layout's records hold its joint count."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from kpt_tf import layouts
from kpt_tf.data import schema

# One MPII record serialized and written (tf.io.TFRecordWriter, as data_prep.shards writes shards) by the code of
# before layouts (kpt_tf.data.schema with the 16-joint constants), from `mpii_record()` below.
GOLDEN_MPII_RECORD = Path(__file__).with_name("golden_mpii16_record.tfrecord")


def mpii_record() -> dict:
    """A person record with the value types data_prep.crops.crop_person gives (numpy float32 / int64, python ints);
    the JPEG is fixed bytes, so the golden depends on the schema alone, not on an encoder's version."""
    joints = np.arange(32, dtype=np.float64).reshape(16, 2) * 3.25 + [10.5, 20.25]
    annotated = np.array([1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1], np.int64)
    visible = np.array([1, 0, 0, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1], np.int64) * annotated
    return {
        "image/encoded": b"\xff\xd8\xff\xe0 not a real jpeg, the schema does not decode it \xff\xd9",
        "image/crop_size": 384, "image/id": "015601864.jpg",
        "image/original_size": np.asarray([720, 1280], np.int64),
        "person/index": 1, "person/dataset_index": 7,
        "person/center": np.asarray([594.0, 257.0], np.float32), "person/scale": np.float32(3.021),
        "person/crop_margin": np.float32(1.5),
        "joints/xy": np.where(annotated[:, None] == 1, joints, 0.0).astype(np.float32).reshape(-1),
        "joints/annotated": annotated, "joints/visible": visible,
        "crop/to_image": np.asarray([2.36, 0.0, 140.8, 0.0, 2.36, -196.1], np.float32),
        "head/box": np.asarray([627.0, 100.0, 706.0, 198.0], np.float32), "head/has_box": 1,
    }


def _parsed(serialized: bytes, layout=layouts.layout("mpii16")) -> dict:
    """A record's fields (its fixed JPEG bytes are not decoded)."""
    parsed = schema.parse_example(tf.constant(serialized), decode_image=False, layout=layout)
    return {k: v.numpy() for k, v in parsed.items()}


def test_an_mpii_record_is_byte_identical_to_one_written_before_layouts(tmp_path):
    path = tmp_path / "one.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(schema.encode_example(mpii_record()))
    assert path.read_bytes() == GOLDEN_MPII_RECORD.read_bytes()
    # Naming the layout changes nothing for MPII, and the golden parses back to the record.
    assert schema.encode_example(mpii_record(), layouts.layout("mpii16")) == schema.encode_example(mpii_record())
    serialized = next(iter(tf.data.TFRecordDataset(str(GOLDEN_MPII_RECORD)))).numpy()
    parsed = _parsed(serialized)
    np.testing.assert_array_equal(parsed["joints/xy"], mpii_record()["joints/xy"].reshape(16, 2))
    np.testing.assert_array_equal(parsed["joints/visible"], mpii_record()["joints/visible"])


def test_a_batch_of_records_parses_to_the_single_records_fields_with_a_leading_axis():
    """What the training stream's per-batch placement parses with (kpt_tf.data.records.batch_transform)."""
    second = dict(mpii_record(), **{"person/dataset_index": 8, "crop/to_image": np.arange(6, dtype=np.float32)})
    serialized = [schema.encode_example(mpii_record()), schema.encode_example(second)]
    batch = schema.parse_example(tf.constant(serialized), decode_image=False)
    for i, one in enumerate(serialized):
        single = _parsed(one)
        assert set(batch) == set(single)
        for name, value in single.items():
            np.testing.assert_array_equal(batch[name][i].numpy(), value, err_msg=name)
    assert batch["joints/xy"].shape == (2, 16, 2) and batch["crop/to_image"].shape == (2, 2, 3)
    with pytest.raises(ValueError, match="a batch of records is parsed without its images"):
        schema.parse_example(tf.constant(serialized))


def coco_record(num_joints: int = 17) -> dict:
    record = dict(mpii_record())
    record.update({"joints/xy": np.arange(2 * num_joints, dtype=np.float32),
                   "joints/annotated": np.ones(num_joints, np.int64),
                   "joints/visible": (np.arange(num_joints) % 2).astype(np.int64)})
    return record


def test_a_coco17_record_holds_17_joints_and_is_refused_as_mpii():
    coco17 = layouts.layout("coco17")
    table = schema.features(coco17)
    assert (table["joints/xy"][1], table["joints/annotated"][1], table["joints/visible"][1]) == (34, 17, 17)
    assert list(table) == list(schema.FEATURES)             # the same features in the same order; only lengths differ
    serialized = schema.encode_example(coco_record(), coco17)
    parsed = _parsed(serialized, coco17)
    assert parsed["joints/xy"].shape == (17, 2) and parsed["joints/visible"].shape == (17,)
    np.testing.assert_array_equal(parsed["joints/xy"].reshape(-1), np.arange(34))
    with pytest.raises(ValueError, match=r"'joints/xy' has 34 values, expected 32 \(layout mpii16, 16 joints\)"):
        schema.encode_example(coco_record())
    with pytest.raises(ValueError, match=r"expected 34 \(layout coco17, 17 joints\)"):
        schema.encode_example(mpii_record(), coco17)
    with pytest.raises(tf.errors.InvalidArgumentError):      # 17 joints read as MPII's 16
        _parsed(serialized)

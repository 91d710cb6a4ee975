"""`kpt_tf.export --format tflite` (kpt_tf/tflite.py): the file's heatmaps against the SavedModel's, every
quantisation, the embedded metadata, and what is refused."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kpt_tf import tflite
from kpt_tf import workdir as wd
from tests.conftest import REPO


def val_crops(records, count=32):
    from kpt_tf.joints import JointSubset

    return tflite.calibration_crops(records, "val", JointSubset.parse("all"), 64, count=count)


@pytest.fixture(scope="module")
def exported(trained_workdir, exported_savedmodel, embedded_records, tmp_path_factory):
    """The trained tiny network as a SavedModel (no flip test: the TFLite file is the network alone) and as TFLite
    files of every quantisation."""
    from kpt_tf.export import export_workdir_tflite

    out = tmp_path_factory.mktemp("tflite")
    files = {q: export_workdir_tflite(trained_workdir, out / f"net_{q}.tflite", quantize=q,
                                      calibration_data=str(embedded_records) if q == "int8" else None)
             for q in tflite.QUANTIZATIONS}
    return exported_savedmodel, files


@pytest.mark.slow
def test_float32_tflite_heatmaps_equal_the_savedmodel_heatmaps(exported, embedded_records):
    import tensorflow as tf

    savedmodel, files = exported
    crops = val_crops(embedded_records)
    loaded = tf.saved_model.load(str(savedmodel))     # held: a bound endpoint alone lets its variables go
    expected = loaded.heatmaps(tf.constant(crops)).numpy()
    network = tflite.TFLiteNetwork(files["none"])
    for batch in (crops, crops[:1], crops[5:8]):     # the interpreter's input is resized between calls
        got = network(batch)
        reference = expected[: len(batch)] if batch is crops or len(batch) == 1 else expected[5:8]
        assert float(np.abs(got - reference).max()) <= 1e-4 * float(np.abs(reference).max())
    metadata, served = tflite.read_metadata(files["none"]), wd.ExportMetadata.read(savedmodel)
    for field in ("joints", "input_size", "heatmap_size", "sigma", "architecture"):
        assert getattr(metadata, field) == getattr(served, field)
    assert (metadata.format, metadata.quantize, metadata.flip_test) == ("tflite", "none", False)


@pytest.mark.slow
def test_quantised_files_are_smaller_and_stay_close_to_float32(exported, embedded_records):
    """Heatmap error relative to the float32 file's scale."""
    _, files = exported
    crops = val_crops(embedded_records)
    reference = tflite.TFLiteNetwork(files["none"])(crops)
    sizes = {q: f.stat().st_size for q, f in files.items()}
    assert sizes["float16"] < 0.6 * sizes["none"] and sizes["dynamic"] < 0.4 * sizes["none"]
    assert sizes["int8"] < 0.4 * sizes["none"]
    # bounds a few times what this network measured (BUILD_NOTES, TFLite): float16 3e-4, dynamic 4e-3, int8 0.06
    for quantize, bound in (("float16", 2e-3), ("dynamic", 2e-2), ("int8", 0.25)):
        assert tflite.read_metadata(files[quantize]).quantize == quantize
        got = tflite.TFLiteNetwork(files[quantize])(crops)
        error = float(np.abs(got - reference).max()) / float(np.abs(reference).max())
        assert error < bound, (quantize, error)
    # No keypoint check here: the shared tiny network is briefly trained and its heatmaps hold near-equal peaks, so
    # a quantisation step legitimately moves the argmax (median int8-vs-float32 distance 1.0 to 7.6 input pixels
    # over four builds of it). Keypoints of a trained int8 file are the bench's PCKh table (BUILD_NOTES, TFLite).


def test_refusals_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(ValueError, match="needs --calibration_data"):
        tflite.convert(None, None, None, tmp_path / "x.tflite", "int8")
    with pytest.raises(ValueError, match="one file; give a name ending in .tflite"):
        tflite.convert(None, None, None, tmp_path / "x", "none")
    with pytest.raises(ValueError, match="not one of"):
        tflite.convert(None, None, None, tmp_path / "x.tflite", "int4")
    (tmp_path / "truncated.tflite").write_bytes(b"TFL3" + bytes(20))
    with pytest.raises(ValueError, match="truncated.tflite: not a readable TFLite file"):
        tflite.read_metadata(tmp_path / "truncated.tflite")


def test_a_tflite_file_without_kpt_tf_metadata_is_refused(tmp_path):
    import tensorflow as tf

    module = tf.Module()
    module.f = tf.function(lambda x: x * 2.0, input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module)
    (tmp_path / "foreign.tflite").write_bytes(converter.convert())
    with pytest.raises(ValueError, match="foreign.tflite: a TFLite file without kpt_tf metadata"):
        tflite.read_metadata(tmp_path / "foreign.tflite")


@pytest.mark.slow
def test_predict_runs_a_tflite_file_like_the_keras_model(exported, trained_workdir, tmp_path):
    from kpt_tf.predict import Predictor

    _, files = exported
    rgb = np.random.default_rng(3).integers(0, 256, (90, 70, 3)).astype(np.uint8)
    boxes = np.array([[5, 5, 60, 85], [20, 10, 50, 70]], np.float32)
    from_keras = Predictor.load(trained_workdir).predict(rgb, boxes)
    from_tflite = Predictor.load(files["none"]).predict(rgb, boxes)
    for a, b in zip(from_keras, from_tflite):       # both with the flip test, the TFLite one done by the caller
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    done = subprocess.run([sys.executable, "-m", "kpt_tf.export", "--workdir", str(trained_workdir), "--format",
                           "tflite", "--out", str(tmp_path / "x.tflite"), "--xla"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0 and "--xla applies to a SavedModel" in done.stderr

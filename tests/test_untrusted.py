"""Untrusted files: a SavedModel is read for its variables only, a .keras file loads in safe mode only, and
code carried by either never runs (each test has a side effect that must not happen)."""

from __future__ import annotations

import json

import keras
import pytest
import tensorflow as tf

from kpt_tf import workdir as wd
from kpt_tf.trained import load_keras, load_trained, read_savedmodel_variables
from tests.kpt_tf.test_transfer import tiny_config


def foreign_savedmodel(directory, marker, variables=None, joints=("head_top",), sigma=1.0):
    """A SavedModel that claims to be a kpt_tf export of `joints`, holding `variables` (layer-path name -> value;
    one stem kernel when None), with a resource whose initialiser writes `marker`: `tf.saved_model.load` runs it
    while loading (saving does not)."""

    class Writes(tf.saved_model.experimental.TrackableResource):
        def _create_resource(self):
            return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="")

        def _initialize(self):
            tf.io.write_file(str(marker), "ran")
            return tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=1.0)

    variables = {"stem_conv/kernel": tf.zeros([3, 3, 3, 16])} if variables is None else variables
    module = tf.Module()
    module.writes = Writes()
    module.weights = [tf.Variable(value, name=name) for name, value in variables.items()]
    tf.saved_model.save(module, str(directory))
    wd.ExportMetadata(joints=list(joints), input_size=64, heatmap_size=16, sigma=sigma, flip_test=False).write(
        directory)
    return directory


def test_foreign_savedmodel_is_read_not_executed_by_transfer(tmp_path):
    from kpt_tf.transfer import TransferError, transfer_to_workdir

    marker = tmp_path / "code_ran"
    foreign_savedmodel(tmp_path / "foreign", marker)
    tf.saved_model.load(str(tmp_path / "foreign"))      # the side effect is real when the graph is executed
    assert marker.exists()
    marker.unlink()
    with pytest.raises(TransferError, match="nothing but heads|differ beyond the heads"):
        transfer_to_workdir(tmp_path / "foreign", tiny_config("all"), tmp_path / "out", verbose=False)
    assert not marker.exists(), "kpt_tf.transfer executed the SavedModel's code"
    assert set(read_savedmodel_variables(tmp_path / "foreign")) == {"stem_conv/kernel"}
    assert not (tmp_path / "out").exists()


def keras_file_with_lambda(path, marker):
    """A .keras model whose Lambda layer writes `marker` whenever it is called (rebuilding the model calls it)."""

    code = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), x * 2.0)[1]")
    inputs = keras.Input((64, 64, 3))
    lam = keras.layers.Lambda(code)
    outputs = keras.layers.Conv2D(16, 3, name="stem_conv")(lam(inputs))
    keras.Model(inputs, outputs).save(path)
    if marker.exists():
        marker.unlink()


def test_keras_file_with_a_lambda_layer_is_refused_and_its_code_never_runs(tmp_path):
    from kpt_tf.transfer import TransferError, transfer_to_workdir

    marker = tmp_path / "code_ran"
    keras_file_with_lambda(tmp_path / "best.keras", marker)
    (tmp_path / "config.json").write_text(tiny_config("all").to_json())
    with pytest.raises(ValueError, match=r"best.keras: refused: it carries Python code .*safe mode only"):
        load_trained(tmp_path)
    with pytest.raises(TransferError, match="carries Python code"):
        transfer_to_workdir(tmp_path / "best.keras", tiny_config("all"), tmp_path / "out", verbose=False)
    from keras.src.backend.common import global_state  # Keras has no public "disable" to undo the switch

    keras.config.enable_unsafe_deserialization()         # a process-wide switch does not open the door either
    try:
        with pytest.raises(ValueError, match="carries Python code"):
            load_keras(tmp_path / "best.keras")
    finally:
        global_state.set_global_attribute("safe_mode_saving", None)
    assert not marker.exists(), "the Lambda layer's code ran"
    keras.saving.load_model(tmp_path / "best.keras", safe_mode=False)    # the side effect is real when loaded
    assert marker.exists()


def test_truncated_keras_file_is_reported_as_truncated_not_missing(tmp_path):
    inputs = keras.Input((8, 8, 3))
    keras.Model(inputs, keras.layers.Conv2D(4, 1, name="stem_conv")(inputs)).save(tmp_path / "best.keras")
    data = (tmp_path / "best.keras").read_bytes()
    (tmp_path / "best.keras").write_bytes(data[: len(data) // 2])
    (tmp_path / "config.json").write_text(json.dumps(tiny_config("all").to_dict()))
    with pytest.raises(ValueError, match=r"best.keras: not a readable .keras file \(truncated or corrupt"):
        load_trained(tmp_path)


def test_a_model_with_nan_weights_is_refused(tmp_path):
    import numpy as np

    inputs = keras.Input((8, 8, 3))
    net = keras.Model(inputs, keras.layers.Conv2D(4, 1, name="stem_conv")(inputs))
    net.get_layer("stem_conv").kernel.assign(np.full((1, 1, 3, 4), np.nan, np.float32))
    net.save(tmp_path / "best.keras")
    with pytest.raises(ValueError, match=r"best.keras: 1 of its 2 weights hold NaN or inf \(e.g. stem_conv/kernel\)"):
        load_keras(tmp_path / "best.keras")

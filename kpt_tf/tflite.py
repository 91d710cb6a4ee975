"""A trained network as one `.tflite` file, and running such a file (`kpt_tf.export --format tflite`).

The file holds the network alone: float32 crops [N, S, S, 3] of 0..255 RGB pixels in, the final stage's heatmaps
[N, S/4, S/4, J] out (the model's own `input_rescale` is inside, so a phone feeds raw pixels). What stays outside,
in the caller (kpt_tf.predict on a desktop, a few lines of app code on a phone): cutting the person crop
(kpt_tf.geometry), the flip test (a second call on the mirrored crop) and decoding (argmax plus a quarter-pixel
step, kpt_tf.codec). The export metadata (joints, sizes, sigma, quantisation) is embedded in the flatbuffer's
`metadata` list under the name `kpt_tf` as JSON, so the one file is self-describing.

Quantisation (TFLite's post-training options): `none` (float32), `float16` (weights stored as float16),
`dynamic` (int8 weights, float activations), `int8` (int8 weights and activations, calibrated on crops of a
records directory; float32 input and output kept so callers do not change).

Runtime: LiteRT (`ai-edge-litert`), the interpreter TFLite moved to and the one phones ship; TF's own
`tf.lite.Interpreter` warns that it is leaving TF (BUILD_NOTES, "TFLite").
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kpt_tf import workdir
from kpt_tf.models.registry import DEFAULT_ARCHITECTURE

METADATA_NAME = "kpt_tf"
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
SUFFIX = ".tflite"


def convert(net, codec, subset, out_path, quantize: str = "none", calibration_crops=None,
            architecture: str = DEFAULT_ARCHITECTURE) -> Path:
    """Write `net` (a Keras network) as a TFLite file with its export metadata; staged, then renamed.

    `calibration_crops`: float32 crops [N, S, S, 3] (0..255) for `int8` (TFLite's representative dataset)."""
    import tensorflow as tf

    from kpt_tf.inference import FinalStage

    if quantize not in QUANTIZATIONS:
        raise ValueError(f"--quantize {quantize!r}: not one of {QUANTIZATIONS}")
    if quantize == "int8" and (calibration_crops is None or not len(calibration_crops)):
        raise ValueError("--quantize int8 needs --calibration_data RECORDS: crops to calibrate the activations on")
    out_path = Path(out_path)
    if out_path.suffix != SUFFIX:
        raise ValueError(f"--out {out_path}: a TFLite export is one file; give a name ending in {SUFFIX}")
    if out_path.is_dir():
        raise ValueError(f"--out {out_path}: is a directory; give a file name ending in {SUFFIX}")
    stage = FinalStage(net)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([stage.function.get_concrete_function()], stage)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        crops = np.asarray(calibration_crops, np.float32)
        converter.representative_dataset = lambda: ([crop[None]] for crop in crops)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    from kpt_tf import ownership

    with ownership.owned(out_path, "kpt_tf.export"):
        return _write(converter, net, codec, subset, out_path, quantize, architecture)


def _write(converter, net, codec, subset, out_path: Path, quantize: str, architecture: str) -> Path:
    flatbuffer = converter.convert()
    metadata = workdir.ExportMetadata.of(
        workdir.ExportOptions.tflite(quantize), subset, input_size=int(net.inputs[0].shape[1]),
        heatmap_size=codec.heatmap_size, sigma=codec.sigma, architecture=architecture)
    flatbuffer = with_metadata(flatbuffer, metadata)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    staging = out_path.with_name(f".tmp-{out_path.name}")
    staging.write_bytes(flatbuffer)
    os.replace(staging, out_path)
    return out_path


def with_metadata(flatbuffer: bytes, metadata: workdir.ExportMetadata) -> bytes:
    """The flatbuffer with `metadata` as a `kpt_tf` entry of the model's metadata list (a buffer of JSON)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata.to_json().encode(), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME.encode()] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(path) -> workdir.ExportMetadata:
    """The export metadata of a kpt_tf `.tflite` file; refuses, naming the file, one that has none."""
    from tensorflow.lite.tools import flatbuffer_utils

    path = Path(path)
    try:
        model = flatbuffer_utils.read_model(str(path))
    except Exception as e:  # a truncated or foreign file: the flatbuffer reader's errors vary
        raise ValueError(f"{path}: not a readable TFLite file ({type(e).__name__})") from None
    for entry in model.metadata or []:
        if entry.name in (METADATA_NAME, METADATA_NAME.encode()):
            data = model.buffers[entry.buffer].data
            return workdir.ExportMetadata.from_json(bytes(np.asarray(data, np.uint8)).decode())
    raise ValueError(f"{path}: a TFLite file without kpt_tf metadata (joints, sizes); export it with "
                     "python -m kpt_tf.export --format tflite")


class TFLiteNetwork:
    """A `.tflite` file written by `convert`: crops float32 [N, S, S, 3] (0..255) -> final heatmaps (numpy)."""

    def __init__(self, path, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.metadata = read_metadata(self.path)
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads or os.cpu_count())
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = None

    def __call__(self, crops) -> np.ndarray:
        crops = np.ascontiguousarray(crops, np.float32)
        if crops.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], list(crops.shape))
            self.interpreter.allocate_tensors()
            self._batch = crops.shape[0]
        self.interpreter.set_tensor(self._input["index"], crops)
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self._output["index"]))


def calibration_crops(records_dir, split: str, subset, input_size: int, count: int = 200) -> np.ndarray:
    """Up to `count` model-input crops of a records directory's split, in file order (int8 calibration)."""
    from kpt_tf.data import pipeline

    dataset = pipeline.make_dataset(str(records_dir), split, subset,
                                    pipeline.StreamOptions(batch_size=32, training=False, input_size=input_size))
    crops = []
    for images, _ in dataset:
        crops.extend(np.asarray(images, np.float32))
        if len(crops) >= count:
            break
    if not crops:
        raise ValueError(f"--calibration_data {records_dir}: split {split!r} holds no person")
    return np.stack(crops[:count])

"""The layout of a training workdir and of an exported SavedModel: every file name, the config file, the export
metadata, and loading a trained network from any of them. No other module spells these names.

A training workdir (kpt_tf.train, kpt_tf.transfer):

    config.json                the full training config (ml_collections, JSON)
    init.keras                 starting weights of a fine-tuning run (written by kpt_tf.transfer)
    transfer_report.{json,txt} what kpt_tf.transfer copied
    import_report.json         what kpt_tf.import_checkpoint mapped (an imported checkpoint: config + best.keras)
    best.keras, final.keras    the network at its best validation PCKh / after the last epoch
    checkpoints/best.weights.h5, backup/ (training.resume: removed when training completes)
    metrics.csv, tensorboard/, train_summary.json

An exported SavedModel (kpt_tf.export) carries `assets.extra/kpt_tf.json` (TF Serving's convention for extra
files): the joints, input and heatmap size, sigma, flip test and architecture of the exported network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

CONFIG = "config.json"
INIT_MODEL = "init.keras"
BEST_MODEL = "best.keras"
FINAL_MODEL = "final.keras"
MODELS = {"init": INIT_MODEL, "best": BEST_MODEL, "final": FINAL_MODEL}
BEST_WEIGHTS = "checkpoints/best.weights.h5"
BACKUP = "backup"
METRICS_CSV = "metrics.csv"
TENSORBOARD = "tensorboard"
TRAIN_SUMMARY = "train_summary.json"
TRANSFER_REPORT_JSON = "transfer_report.json"
TRANSFER_REPORT_TEXT = "transfer_report.txt"
IMPORT_REPORT = "import_report.json"
EXPORT_METADATA = "assets.extra/kpt_tf.json"
SAVED_MODEL_GRAPH = "saved_model.pb"


# What a workdir holds before its config.json is written: kpt_tf.transfer's and import_checkpoint's outputs,
# and what a run creates first.
_BEFORE_CONFIG = {INIT_MODEL, TRANSFER_REPORT_JSON, TRANSFER_REPORT_TEXT, IMPORT_REPORT, BEST_MODEL, METRICS_CSV,
                  TENSORBOARD, BACKUP, BEST_WEIGHTS.split("/")[0]}


def check_training_workdir(directory) -> None:
    """Refuse a --workdir for training that is not one: a file, or a directory holding files a training run did
    not write and no config.json (a data directory, a home directory: training would write among them)."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"--workdir {directory}: is a file, not a directory")
    if not directory.is_dir() or (directory / CONFIG).is_file():
        return
    foreign = sorted(p.name for p in directory.iterdir() if p.name not in _BEFORE_CONFIG)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ValueError(f"--workdir {directory}: not a kpt_tf training workdir (no {CONFIG}) and not empty: holds "
                         f"{shown}; use a new or empty directory")


# The files a preparing command writes into its --out (and nothing else), and what it records its source under.
PREPARED_OUTPUTS = {
    "kpt_tf.transfer": ({INIT_MODEL, CONFIG, TRANSFER_REPORT_JSON, TRANSFER_REPORT_TEXT}, TRANSFER_REPORT_JSON,
                        "source"),
    "kpt_tf.import_checkpoint": ({BEST_MODEL, CONFIG, IMPORT_REPORT}, IMPORT_REPORT, "checkpoint"),
}


def describe_directory(directory) -> str:
    """What a directory holds, in words, for a refusal: whose it is."""
    directory = Path(directory)
    names = {p.name for p in directory.iterdir()} if directory.is_dir() else set()
    if is_finished(directory):
        return "a finished training run"
    if (directory / BACKUP).is_dir() or METRICS_CSV in names:
        return "a training run (interrupted or under way)"
    if is_savedmodel(directory):
        return "an exported SavedModel"
    if "manifest.json" in names or any(n.endswith(".tfrecord") for n in names):
        return "TFRecords"
    if IMPORT_REPORT in names:
        return "an imported checkpoint"
    if INIT_MODEL in names:
        return "a kpt_tf.transfer output"
    return "files of its own"


def check_prepared_out(out_dir, command: str, source) -> None:
    """The `--out` of kpt_tf.transfer / kpt_tf.import_checkpoint: new, empty, or that command's own earlier output
    for the same source (written again); anything else is someone's work and is refused, naming what is there."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir}: is a file; give a new or empty directory")
    if not out_dir.is_dir():
        return
    names = {p.name for p in out_dir.iterdir()}
    if not names:
        return
    own, report, key = PREPARED_OUTPUTS[command]
    if names <= own and report in names:
        try:
            earlier = json.loads((out_dir / report).read_text()).get(key)
        except (OSError, ValueError):
            earlier = None
        if earlier is not None and str(earlier) == str(source):
            return
        raise ValueError(f"--out {out_dir}: holds the {command} output of another source ({earlier}); give a new "
                         "directory")
    shown = ", ".join(sorted(names)[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    raise ValueError(f"--out {out_dir}: holds {describe_directory(out_dir)} ({shown}); {command} writes only into a "
                     "new or empty directory")


def starting_weights(directory):
    """(model file, the command that prepared it) a training run in `directory` starts from, or None: kpt_tf.transfer's
    init.keras, or the network kpt_tf.import_checkpoint wrote (best.keras beside import_report.json) while no run has
    finished there."""
    directory = Path(directory)
    if (directory / INIT_MODEL).is_file():
        return directory / INIT_MODEL, "kpt_tf.transfer"
    if (directory / IMPORT_REPORT).is_file() and (directory / BEST_MODEL).is_file() and not is_finished(directory):
        return directory / BEST_MODEL, "kpt_tf.import_checkpoint"
    return None


def save_config(config, directory) -> Path:
    path = Path(directory) / CONFIG
    path.write_text(config.to_json_best_effort(indent=1))
    return path


def load_config(directory):
    """The ml_collections config of a training workdir."""
    import ml_collections

    path = Path(directory) / CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {CONFIG}; is {directory} a kpt_tf training workdir?")
    return ml_collections.ConfigDict(json.loads(path.read_text()))


@contextlib.contextmanager
def staged(out_dir, prefix: str):
    """Write a workdir atomically: yields a temporary directory beside `out_dir`; its files are moved into
    `out_dir` only when the block finishes without an exception (nothing is written otherwise)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=out_dir.parent))
    try:
        yield staging
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, out_dir / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def is_finished(directory) -> bool:
    """True when a training run completed in `directory` (its summary is written last)."""
    return (Path(directory) / TRAIN_SUMMARY).is_file()


def is_savedmodel(path) -> bool:
    return Path(path).is_dir() and (Path(path) / SAVED_MODEL_GRAPH).is_file()


# --- export metadata ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ExportMetadata:
    """What a served network is: read by evaluation, transfer and clients without loading the graph."""

    joints: list
    input_size: int
    heatmap_size: int
    sigma: float
    flip_test: bool
    architecture: str = "hourglass"
    max_image_pixels: int | None = None    # serving refuses larger images (None: written before the limit)
    xla: bool = False                      # the network runs XLA-compiled (kpt_tf.export --xla)
    format: str = "savedmodel"             # "savedmodel" | "tflite" (the network alone: crop, flip, decode outside)
    quantize: str = "none"                 # TFLite weights/activations: none | float16 | dynamic | int8

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "ExportMetadata":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})

    def write(self, savedmodel_dir) -> Path:
        path = Path(savedmodel_dir) / EXPORT_METADATA
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def read(cls, savedmodel_dir) -> "ExportMetadata":
        path = Path(savedmodel_dir) / EXPORT_METADATA
        if not path.is_file():
            raise FileNotFoundError(f"{savedmodel_dir}: not a kpt_tf export (no {EXPORT_METADATA})")
        return cls.from_json(path.read_text())

    def codec(self):
        from kpt_tf.codec import HeatmapCodec

        return HeatmapCodec(input_size=int(self.input_size), heatmap_size=int(self.heatmap_size),
                            sigma=float(self.sigma))


# --- trained networks ---------------------------------------------------------------------------------

@dataclasses.dataclass
class TrainedModel:
    """A trained network from a workdir, a `.keras` file or an exported SavedModel, behind one interface."""

    path: Path
    net: object = None          # keras.Model (workdir, .keras), else None
    savedmodel: object = None   # the loaded SavedModel, else None
    config: object = None       # the training config when known (workdir, .keras beside its config.json)
    metadata: ExportMetadata | None = None

    @property
    def kind(self) -> str:
        return "SavedModel" if self.savedmodel is not None else ".keras model"

    @property
    def joints(self):
        """The JointSubset of the network's heads, or None when nothing records it."""
        from kpt_tf.joints import JointSubset

        if self.metadata is not None:
            return JointSubset.parse(self.metadata.joints)
        if self.config is not None:
            return JointSubset.parse(self.config.joints)
        return None

    def codec(self):
        if self.metadata is not None:
            return self.metadata.codec()
        if self.config is None:
            raise ValueError(f"{self.path}: no config.json beside it, so its codec is unknown")
        from kpt_tf.models import codec_from_config

        return codec_from_config(self.config)

    def heatmaps_fn(self, flip_test: bool = True, flip_shift: bool = False):
        """crops float32 [N, S, S, 3] -> final heatmaps. A SavedModel has its flip test fixed at export."""
        if self.savedmodel is not None:
            # A bound endpoint alone would let the SavedModel (and its variables) be garbage-collected.
            return lambda crops, _model=self.savedmodel: _model.heatmaps(crops)
        from kpt_tf.inference import net_heatmaps_fn

        return net_heatmaps_fn(self.net, self.joints, flip_test, flip_shift)

    def weights(self) -> dict:
        """Layer-path name ("stem_conv/kernel") -> numpy value."""
        import numpy as np

        if self.savedmodel is not None:
            return {v.name.rsplit(":", 1)[0]: np.asarray(v.numpy()) for v in self.savedmodel.variables}
        from kpt_tf.models.weights import weights_by_name

        return weights_by_name(self.net)


def load_trained(path, which: str = "best", config=None) -> TrainedModel:
    """A trained network from an exported SavedModel, a training workdir (its `which` model) or a `.keras` file.

    Raises FileNotFoundError / ValueError naming the path when it is none of those.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: does not exist")
    if is_savedmodel(path):
        import tensorflow as tf

        metadata = ExportMetadata.read(path)
        return TrainedModel(path=path, savedmodel=tf.saved_model.load(str(path)), metadata=metadata)
    if path.is_dir():
        if which not in MODELS:
            raise ValueError(f"which={which!r}: expected one of {sorted(MODELS)}")
        config = config or load_config(path)
        path = path / MODELS[which]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no trained model ({MODELS[which]}) in the workdir; train first")
    if path.suffix != ".keras" or not path.is_file():
        raise ValueError(f"{path}: not a SavedModel, a training workdir or a .keras file")
    if config is None and (path.parent / CONFIG).is_file():
        config = load_config(path.parent)
    return TrainedModel(path=path, net=load_keras(path), config=config)


# --- untrusted files ------------------------------------------------------------------------------------

def load_keras(path):
    """A `.keras` file in Keras safe mode only: a file carrying Python code (a Lambda layer's bytecode) is
    refused before any of it runs. A truncated or foreign file is refused naming the file."""
    import zipfile

    import keras

    import kpt_tf.models  # noqa: F401  (registers the custom layers saved files refer to)

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a readable .keras file (truncated or corrupt: not a complete zip archive, "
                         f"{path.stat().st_size} bytes)")
    code = _layers_carrying_code(path)
    if code:
        raise ValueError(f"{path}: refused: it carries Python code ({', '.join(code[:3])}); kpt_tf loads .keras "
                         "files in Keras safe mode only, and none of its code was run")
    try:
        net = keras.saving.load_model(path, compile=False, safe_mode=True)
    except ValueError as e:
        if "safe_mode" in str(e) or "unsafe" in str(e).lower():
            raise ValueError(f"{path}: refused: it carries Python code (e.g. a Lambda layer); kpt_tf loads .keras "
                             "files in Keras safe mode only, and none of its code was run") from None
        raise ValueError(f"{path}: not a kpt_tf .keras model ({str(e).splitlines()[0]})") from None
    except (OSError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .keras file ({type(e).__name__}: {e})") from None
    import numpy as np

    bad = [v.path for v in net.weights if not np.all(np.isfinite(np.asarray(v.numpy())))]
    if bad:
        raise ValueError(f"{path}: {len(bad)} of its {len(net.weights)} weights hold NaN or inf (e.g. {bad[0]}): "
                         "the training that wrote it diverged")
    return net


def _layers_carrying_code(path) -> list:
    """The layers of a `.keras` file's config that hold Python code (Lambda layers, serialised lambdas).

    Checked before Keras sees the file: `safe_mode=True` alone is overridden by a process-wide
    `keras.config.enable_unsafe_deserialization()` (measured on Keras 3.15)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (KeyError, ValueError, zipfile.BadZipFile):
        return []        # not a model archive: Keras' own refusal names it
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") in ("Lambda", "__lambda__"):
                found.append(str((node.get("config") or {}).get("name", node["class_name"])))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def read_savedmodel_variables(path) -> dict:
    """Layer-path name ("stem_conv/kernel") -> value of an exported SavedModel's variables, read from its
    checkpoint (`variables/variables`) alone: the SavedModel's graph is never loaded or executed."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    prefix = Path(path) / "variables" / "variables"
    try:
        reader = tf.train.load_checkpoint(str(prefix))
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except (tf.errors.OpError, ValueError) as e:
        raise ValueError(f"{path}: its variables ({prefix}) cannot be read ({type(e).__name__})") from None
    out = {}
    for node in graph.nodes:
        for attribute in node.attributes:
            if attribute.name == "VARIABLE_VALUE" and attribute.full_name:
                out[attribute.full_name.rsplit(":", 1)[0]] = np.asarray(reader.get_tensor(attribute.checkpoint_key))
    return out

"""The layout of a training workdir and of an exported SavedModel: every file name, the config file, the export
metadata, and the checks of a directory given as one. No other module spells these names. Loading the trained
network a workdir, `.keras` file or SavedModel holds is `kpt_tf.trained`'s.

A training workdir (kpt_tf.train, kpt_tf.transfer):

    config.json                the full training config (ml_collections, JSON)
    init.keras                 starting weights of a fine-tuning run (written by kpt_tf.transfer)
    transfer_report.{json,txt} what kpt_tf.transfer copied
    import_report.json         what kpt_tf.import_checkpoint mapped (an imported checkpoint: config + best.keras)
    best.keras, final.keras    the network at its best validation PCKh / after the last epoch
    checkpoints/best.weights.h5, backup/ (training.resume: removed when training completes)
    metrics.csv, tensorboard/, train_summary.json

An exported SavedModel (kpt_tf.export) carries `assets.extra/kpt_tf.json` (TF Serving's convention for extra
files): the joints and their keypoint layout, input and heatmap size, sigma, flip test and architecture of the
exported network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

from kpt_tf.joints import JointSubset
from kpt_tf.layouts import DEFAULT_LAYOUT
from kpt_tf.models.registry import DEFAULT_ARCHITECTURE

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


# --- export options and metadata -----------------------------------------------------------------------

# Larger served images are refused before their pixels are read (8192 x 8192; PIL's decompression-bomb warning is
# at 89 Mpx): beyond its uint8 input a served image costs one float16 copy (BUILD_NOTES: measured growth 1.0 x).
DEFAULT_MAX_IMAGE_PIXELS = 8192 * 8192


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """How kpt_tf.export writes a trained network (its flags): one object from the command line to the writer,
    recorded in the export's `ExportMetadata`.

    savedmodel, the serving graph (crop, network, flip test, decode): flip_test, max_image_pixels and xla apply.
    tflite, the network alone (crop, flip test and decoding stay with the caller): quantize applies."""

    format: str = "savedmodel"             # "savedmodel" | "tflite"
    flip_test: bool = True                 # average with the mirrored crop in the graph (when the joints allow it)
    # served images with more pixels are refused (None: no limit recorded, an export from before the limit)
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS
    xla: bool = False                      # the network runs XLA-compiled (kpt_tf.export --xla)
    quantize: str = "none"                 # TFLite weights/activations: none | float16 | dynamic | int8

    @classmethod
    def tflite(cls, quantize: str = "none") -> "ExportOptions":
        """A TFLite file's: the network alone, so no flip test, image limit or XLA inside it."""
        return cls(format="tflite", flip_test=False, max_image_pixels=None, quantize=quantize)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExportMetadata(ExportOptions):
    """What a served network is: the options it was exported with (`flip_test`: whether the graph flips, False when
    the joints do not allow it) and the network's joints (canonical names of keypoint layout `layout`), sizes,
    sigma and architecture. Read by evaluation, transfer and clients without loading the graph."""

    joints: list
    input_size: int
    heatmap_size: int
    sigma: float
    architecture: str = DEFAULT_ARCHITECTURE
    layout: str = DEFAULT_LAYOUT     # an export written before layouts were recorded is MPII's

    @classmethod
    def of(cls, options: ExportOptions, subset, **network) -> "ExportMetadata":
        """`options`, the joint subset's names and layout (what `joint_subset` rebuilds), and the network's other
        fields (input_size, heatmap_size, sigma, architecture)."""
        return cls(**{f.name: getattr(options, f.name) for f in dataclasses.fields(ExportOptions)},
                   joints=list(subset.names), layout=subset.layout.name, **network)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "ExportMetadata":
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in json.loads(text).items() if k in known}
        fields.setdefault("max_image_pixels", None)     # written before the limit existed: none recorded
        return cls(**fields)

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

    def joint_subset(self) -> JointSubset:
        """The JointSubset of the network's heads, rebuilt in its layout."""
        return JointSubset.from_names(self.joints, self.layout)

    def codec(self):
        from kpt_tf.codec import HeatmapCodec

        return HeatmapCodec(input_size=int(self.input_size), heatmap_size=int(self.heatmap_size),
                            sigma=float(self.sigma))

"""The embedded data set: procedural people, converted to TFRecords, made once and reused, in MPII's layout
(mpii16) or COCO's (coco17).

Used by the demo, the KPTransfer benchmark (its `--config.data.dir`), other benchmarks and tests.
`root/synth` holds the generator's output in both formats (images/, annotations.json, gt_val.mat,
person_keypoints_{train,val}.json), made once for both layouts; `root/records` the MPII converter's shards and
`root/coco_records` the COCO converter's (one run per split into one directory, as for train2017 and val2017).
Each is remade only when absent or made with other settings.

    python -m data_prep.embedded --out runs/embedded --num_train 2000 --num_val 250 --input_size 128
    python -m kpt_tf.experiments.kptransfer --config configs/kptransfer_upper_lower.py \\
        --config.data.dir=runs/embedded/records ...
    python -m data_prep.embedded --out runs/embedded --layout coco17     # -> runs/embedded/coco_records

The CLI prints the records directory (the last line of its output).
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags

from data_prep import coco_to_tfrecord, mpii_to_tfrecord, workers
from data_prep.synth.coco_people import COCO_FILES
from data_prep.synth.generate import generate
from kpt_tf.data.manifest import MANIFEST_NAME, read_manifest

CROP_MARGIN = 1.5  # the converters' default: room for rotation and zoom-out around the person box
NUM_SHARDS = {"train": 4, "val": 1}
# Per layout: the records directory and the stamp of the settings it was made with, both under root.
RECORDS_DIRS = {"mpii16": "records", "coco17": "coco_records"}
STAMPS = {"mpii16": "embedded.json", "coco17": "embedded_coco.json"}
GENERATED_STAMP = "generated.json"      # in root/synth: the generation's settings, written once it is complete


def ensure_embedded_dataset(root, num_train: int, num_val: int, seed: int = 0, input_size: int = 256,
                            num_workers: int | None = None, progress: bool = True, layout: str = "mpii16") -> Path:
    """Generate and convert the embedded data set under `root` (cached); returns the records directory.

    layout "mpii16": root/records; "coco17": root/coco_records; both with both splits, converted from one
    generation (root/synth). Crops are stored at 1.5 x the
    model input size (the converters' margin), so a 128-pixel demo model does not decode 384-pixel crops.
    """
    if layout not in RECORDS_DIRS:
        raise ValueError(f"layout {layout!r}: the embedded data set comes in {', '.join(RECORDS_DIRS)}")
    root = Path(root)
    num_workers = num_workers or workers.available_cpus()
    settings = {"num_train": num_train, "num_val": num_val, "seed": seed,
                "crop_size": int(round(input_size * CROP_MARGIN)), "crop_margin": CROP_MARGIN}
    stamp, records = root / STAMPS[layout], root / RECORDS_DIRS[layout]
    if _stamped(stamp, settings) and _converted(records, layout, settings):
        return records
    synth = generated_people(root, num_train, num_val, seed, num_workers)
    if layout == "mpii16":
        manifests = {"": mpii_to_tfrecord.convert(
            synth / "annotations.json", synth / "images", records, crop_size=settings["crop_size"],
            crop_margin=CROP_MARGIN, num_workers=num_workers, progress=progress, num_shards=NUM_SHARDS)}
    else:
        manifests = {split: coco_to_tfrecord.convert(
            synth / file_name, synth / "images", records, split=split, num_shards=NUM_SHARDS[split],
            crop_size=settings["crop_size"], crop_margin=CROP_MARGIN, num_workers=num_workers, progress=progress)
            for split, file_name in COCO_FILES.items() if _coco_split_made(split, settings)}
    last = list(manifests.values())[-1]     # the COCO converter's last run lists both splits
    print("converted: " + ", ".join(f"{s} {v['written']} written, {v['skipped']} skipped"
                                    for s, v in last["splits"].items()), flush=True)
    stamp.write_text(json.dumps(settings))
    return records


def generated_people(root, num_train: int, num_val: int, seed: int, num_workers: int) -> Path:
    """root/synth with these settings, in both formats: generated only when absent, incomplete or made with other
    settings (or by a generator that wrote no COCO files)."""
    synth = Path(root) / "synth"
    settings = {"num_train": num_train, "num_val": num_val, "seed": seed}
    stamp = synth / GENERATED_STAMP
    if _stamped(stamp, settings) and all((synth / name).is_file() for name in COCO_FILES.values()):
        return synth
    stamp.unlink(missing_ok=True)           # an interrupted generation must not pass for a complete one
    summary = generate(synth, num_train=num_train, num_val=num_val, seed=seed, num_workers=num_workers)
    print(f"generated {summary}", flush=True)
    stamp.write_text(json.dumps(settings))
    return synth


def _stamped(stamp: Path, settings: dict) -> bool:
    return stamp.is_file() and json.loads(stamp.read_text()) == settings


def _converted(records: Path, layout: str, settings: dict) -> bool:
    if layout == "mpii16":
        return (records / MANIFEST_NAME).is_file()
    content = read_manifest(records) or {}
    made = content.get("splits", {}) if content.get("complete") else {}
    return all(split in made for split in COCO_FILES if _coco_split_made(split, settings))


def _coco_split_made(split: str, settings: dict) -> bool:
    """A COCO split is converted when it has people (num_val 0 writes an empty val file: the converter refuses it)."""
    return settings[f"num_{split}"] > 0


FLAGS = flags.FLAGS


def define_flags():
    """CLI flags (defined only when run as a program, so importing this module defines none)."""
    flags.DEFINE_string("out", None, "Root directory of the embedded data set (synth/ and records/ go there).")
    flags.DEFINE_integer("num_train", 2000, "Training people to generate.")
    flags.DEFINE_integer("num_val", 250, "Validation people to generate.")
    flags.DEFINE_integer("seed", 0, "Generator seed.")
    flags.DEFINE_integer("input_size", 256, "Model input size the crops are stored for (crop = 1.5 x this).")
    flags.DEFINE_integer("num_workers", None, "Worker processes (default: the CPUs this process may use).")
    flags.DEFINE_boolean("progress", True, "Show the converter's progress bar.")
    flags.DEFINE_enum("layout", "mpii16", list(RECORDS_DIRS), "Keypoint layout of the records: mpii16 (root/records) "
                      "or coco17 (root/coco_records); one generation serves both.")
    flags.mark_flags_as_required(["out"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        records = ensure_embedded_dataset(FLAGS.out, FLAGS.num_train, FLAGS.num_val, FLAGS.seed, FLAGS.input_size,
                                          FLAGS.num_workers, FLAGS.progress, FLAGS.layout)
    except (ValueError, OSError) as e:  # bad numbers (generator), bad settings (ConversionError), unwritable
        raise app.UsageError(str(e)) from None
    print(records)


if __name__ == "__main__":
    define_flags()
    from kpt_tf import cli

    cli.run(main, "data_prep.embedded")

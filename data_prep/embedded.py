"""The embedded data set: procedural MPII-format people, converted to TFRecords, made once and reused.

Used by the demo, the KPTransfer benchmark (its `--config.data.dir`), other benchmarks and tests.
`root/synth` holds the generator's MPII-format output (images/, annotations.json, gt_val.mat) and
`root/records` the converter's shards; each is regenerated only when absent or made with other settings.

    python -m data_prep.embedded --out runs/embedded --num_train 2000 --num_val 250 --input_size 128
    python -m kpt_tf.experiments.kptransfer --config configs/kptransfer_upper_lower.py \\
        --config.data.dir=runs/embedded/records ...

The CLI prints the records directory (the last line of its output).
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags

from data_prep import workers
from data_prep.mpii_to_tfrecord import convert
from data_prep.synth.generate import generate
from kpt_tf.data.manifest import MANIFEST_NAME

CROP_MARGIN = 1.5  # the converter's default: room for rotation and zoom-out around the person box


def ensure_embedded_dataset(root, num_train: int, num_val: int, seed: int = 0, input_size: int = 256,
                            num_workers: int | None = None, progress: bool = True) -> Path:
    """Generate and convert the embedded data set under `root` (cached); returns the records directory.

    Crops are stored at 1.5 x the model input size (the converter's margin), so a 128-pixel demo model
    does not decode 384-pixel crops.
    """
    root = Path(root)
    num_workers = num_workers or workers.available_cpus()
    settings = {"num_train": num_train, "num_val": num_val, "seed": seed,
                "crop_size": int(round(input_size * CROP_MARGIN)), "crop_margin": CROP_MARGIN}
    stamp = root / "embedded.json"
    records = root / "records"
    if stamp.is_file() and json.loads(stamp.read_text()) == settings and (records / MANIFEST_NAME).is_file():
        return records
    synth = root / "synth"
    summary = generate(synth, num_train=num_train, num_val=num_val, seed=seed, num_workers=num_workers)
    print(f"generated {summary}", flush=True)
    manifest = convert(synth / "annotations.json", synth / "images", records, crop_size=settings["crop_size"],
                       crop_margin=CROP_MARGIN, num_workers=num_workers, progress=progress,
                       num_shards={"train": 4, "val": 1})
    print("converted: " + ", ".join(f"{s} {v['written']} written, {v['skipped']} skipped"
                                    for s, v in manifest["splits"].items()), flush=True)
    stamp.write_text(json.dumps(settings))
    return records


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
    flags.mark_flags_as_required(["out"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        records = ensure_embedded_dataset(FLAGS.out, FLAGS.num_train, FLAGS.num_val, FLAGS.seed, FLAGS.input_size,
                                          FLAGS.num_workers, FLAGS.progress)
    except (ValueError, OSError) as e:  # bad numbers (generator), bad settings (ConversionError), unwritable
        raise app.UsageError(str(e)) from None
    print(records)


if __name__ == "__main__":
    define_flags()
    from kpt_tf import cli

    cli.run(main, "data_prep.embedded")

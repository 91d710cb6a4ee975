"""The embedded data set: procedural MPII-format people, converted to TFRecords, made once and reused.

Used by the demo, the KPTransfer experiments (when no data.dir is given), benchmarks and tests.
`root/synth` holds the generator's MPII-format output (images/, annotations.json, gt_val.mat) and
`root/records` the converter's shards; each is regenerated only when absent or made with other settings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CROP_MARGIN = 1.5  # the converter's default: room for rotation and zoom-out around the person box


def ensure_embedded_dataset(root, num_train: int, num_val: int, seed: int = 0, input_size: int = 256,
                            num_workers: int | None = None, progress: bool = True) -> Path:
    """Generate and convert the embedded data set under `root` (cached); returns the records directory.

    Crops are stored at 1.5 x the model input size (the converter's margin), so a 128-pixel demo model
    does not decode 384-pixel crops.
    """
    from data_prep import synth_mpii
    from data_prep.mpii_to_tfrecord import convert

    root = Path(root)
    workers = num_workers or len(os.sched_getaffinity(0))
    settings = {"num_train": num_train, "num_val": num_val, "seed": seed,
                "crop_size": int(round(input_size * CROP_MARGIN)), "crop_margin": CROP_MARGIN}
    stamp = root / "embedded.json"
    records = root / "records"
    if stamp.is_file() and json.loads(stamp.read_text()) == settings and (records / "manifest.json").is_file():
        return records
    synth = root / "synth"
    summary = synth_mpii.generate(synth, num_train=num_train, num_val=num_val, seed=seed, num_workers=workers)
    print(f"generated {summary}", flush=True)
    manifest = convert(synth / "annotations.json", synth / "images", records, crop_size=settings["crop_size"],
                       crop_margin=CROP_MARGIN, num_workers=workers, progress=progress,
                       num_shards={"train": 4, "val": 1})
    print("converted: " + ", ".join(f"{s} {v['written']} written, {v['skipped']} skipped"
                                    for s, v in manifest["splits"].items()), flush=True)
    stamp.write_text(json.dumps(settings))
    return records

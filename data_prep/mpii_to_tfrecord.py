"""Offline converter: MPII annotations + images -> sharded TFRecords of person crops (kpt_tf.data.schema).

    python -m data_prep.mpii_to_tfrecord --annotations ../shared/mpii/mpii_annotations.json.gz
        --images_dir /data/mpii/images --output_dir /data/mpii/records [--val_gt detections_our_format.mat]

Annotation files: the release .mat (train people, and the single-person test people: split 'test'),
mpii_annotations.json[.gz], the generator's annotations.json, HRNet's/mmpose's train/valid/trainval/test.json
(kpt_tf.mpii.hrnet_json; `--json_split` for another file name). Test people have no joints: their records
carry objpos/scale crops for `kpt_tf.evaluate --split test --submission`.

One record per usable person: a `crop_size` JPEG crop covering `crop_margin` person boxes around the
adjusted person box (geometry.adjust_person_box / crop_affine, CONVENTIONS.md), the 16 joints in crop
pixels, annotated/visible flags, centre, scale, the crop->image affine and the head box when the source
has one. People that cannot be used (objpos -1 or missing, scale <= 0, image missing or undecodable, no
annotated joint) are skipped, counted and listed with the reason in `output_dir/manifest.json`.

Shards: each split's people (file order) are cut into `num_shards` contiguous blocks; a shard is written
under a temporary name and renamed when complete, and the manifest is updated after every shard. A rerun
with the same inputs keeps the shards the manifest lists whose sha256 still matches and redoes the rest;
the output is byte-identical whatever the number of workers or interruptions.

Speed: people are grouped by image so that each image is decoded once; images are processed by
`num_workers` processes (data_prep.workers: never TensorFlow there) and serialized in this process; large
people are cropped from a reduced JPEG decode (data_prep.crops).

Modules: annotations are read by kpt_tf.mpii, people cropped by data_prep.crops, shards planned and written
by data_prep.shards, the manifest built by kpt_tf.data.manifest; this module checks the inputs, decides
what a rerun keeps, and is the CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

from absl import app, flags

from data_prep import workers
from data_prep.conversion import (
    DEFAULT_NUM_SHARDS,
    ConversionError,
    check_images_present,
    check_settings,
    parse_num_shards,
    print_summary,
    run_converter,
    write_records,
)
from data_prep.crops import CropSettings, mark_duplicates
from kpt_tf import ownership
from kpt_tf.data import manifest as mf
from kpt_tf.mpii.annotations import (
    SPLITS,
    AnnotationError,
    attach_validation_head_boxes,
    read_annotations,
    split_people,
)

# Written by default even when empty (as before the test split existed); 'test' when the file holds test people.
ALWAYS_WRITTEN_SPLITS = ("train", "val")


# --------------------------------------------------------------------------------------------------
# The conversion
# --------------------------------------------------------------------------------------------------

def parse_splits(value) -> list[str]:
    splits = [s.strip() for s in (value.split(",") if isinstance(value, str) else value) if s.strip()]
    if not splits:
        raise ConversionError("--splits is empty")
    if unknown := [s for s in splits if s not in SPLITS]:
        raise ConversionError(f"--splits: unknown split(s) {unknown}; known: {', '.join(SPLITS)}")
    return list(dict.fromkeys(splits))


def convert(annotations, images_dir, output_dir, *args, **kwargs) -> dict:
    """Convert holding `output_dir`'s lock (kpt_tf.ownership: two converters on one directory are refused)."""
    with ownership.owned(output_dir, "data_prep.mpii_to_tfrecord"):
        return _convert(annotations, images_dir, output_dir, *args, **kwargs)


def _convert(annotations, images_dir, output_dir, splits: Sequence[str] | str | None = None,
             num_shards=None, crop_size: int = 384, crop_margin: float = 1.5, max_people: int = 0,
             num_workers: int = 1, jpeg_quality: int = 95, val_gt=None, val_list=None,
             reduced_decode: bool = True, progress: bool = True, json_split: str | None = None) -> dict:
    """Convert; -> the manifest (also written to output_dir/manifest.json). Raises ConversionError.

    splits None: train and val, and test when the annotations hold test people."""
    if splits is not None:
        splits = parse_splits(splits)
    check_settings(crop_size, crop_margin, max_people, num_workers, jpeg_quality)
    annotations, images_dir, output_dir = Path(annotations), Path(images_dir), Path(output_dir)
    if not images_dir.is_dir():
        raise ConversionError(f"--images_dir {images_dir} is not a directory")
    try:
        people = read_annotations(annotations, val_list, json_split or None)
        if val_gt:
            attach_validation_head_boxes(people, val_gt)
    except AnnotationError as e:
        raise ConversionError(str(e)) from e
    if not people:
        raise ConversionError(f"--annotations {annotations}: holds no people")
    mark_duplicates(people)
    by_split = split_people(people)
    if splits is None:
        splits = [s for s in SPLITS if s in ALWAYS_WRITTEN_SPLITS or by_split.get(s)]
    num_shards = parse_num_shards(DEFAULT_NUM_SHARDS if num_shards is None else num_shards, splits)
    selected = {s: by_split.get(s, [])[:max_people or None] for s in splits}
    if not any(selected.values()):
        raise ConversionError(f"--annotations {annotations}: no people in split(s) {', '.join(splits)}")
    check_images_present(selected, images_dir, annotations)
    for split in splits:
        if not selected[split]:
            print(f"mpii_to_tfrecord: warning: split {split!r} has no people in {annotations}; its "
                  f"{num_shards[split]} shard(s) will be empty", file=sys.stderr)

    flag_values = {"annotations": str(annotations), "images_dir": str(images_dir),
                   "output_dir": str(output_dir), "splits": list(splits), "num_shards": num_shards,
                   "crop_size": crop_size, "crop_margin": crop_margin, "max_people": max_people,
                   "num_workers": num_workers, "jpeg_quality": jpeg_quality,
                   "val_gt": str(val_gt) if val_gt else None, "val_list": str(val_list) if val_list else None,
                   "reduced_decode": bool(reduced_decode), "json_split": json_split or None}
    # What decides the bytes of a shard (paths are not: moved inputs give the same records).
    content = {"annotations_sha256": mf.sha256_of_file(annotations),
               "val_gt_sha256": mf.sha256_of_file(val_gt) if val_gt else None,
               "val_list_sha256": mf.sha256_of_file(val_list) if val_list else None,
               "crop_size": crop_size, "crop_margin": crop_margin, "max_people": max_people,
               "jpeg_quality": jpeg_quality, "reduced_decode": bool(reduced_decode)}
    if json_split:   # only when given, so that directories converted before the flag existed stay reusable
        content["json_split"] = json_split

    return write_records(selected, images_dir, output_dir,
                         CropSettings(crop_size, float(crop_margin), jpeg_quality, bool(reduced_decode)),
                         num_shards, flag_values, content, num_workers=num_workers, progress=progress,
                         program="mpii_to_tfrecord")


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------

FLAGS = flags.FLAGS


def define_flags():
    """The CLI flags; defined only when run as a program, so that importing this module (tests, other
    tools) never collides with another module's flags of the same name (absl flags are global)."""
    flags.DEFINE_string("annotations", None, "mpii_human_pose_v1_u12_1.mat, mpii_annotations.json[.gz], the "
                        "generator's annotations.json, or HRNet's/mmpose's train/valid/trainval/test.json")
    flags.DEFINE_string("images_dir", None, "Directory holding the MPII images (file names as in the annotations).")
    flags.DEFINE_string("output_dir", None, "Where the shards and manifest.json go (created).")
    flags.DEFINE_string("splits", None, "Comma-separated splits to write (train, val, test). Default: train and "
                        "val, and test when the annotations hold test people (the release .mat, HRNet's test.json).")
    flags.DEFINE_string("num_shards", "train=8,val=2,test=4", "Shards per split: one integer for every split, or "
                        "'split=count,...'.")
    flags.DEFINE_enum("json_split", None, list(SPLITS), "HRNet/mmpose json only: the split of its people when the "
                      "file name does not tell (train.json, trainval.json -> train, valid.json -> val, "
                      "test.json -> test).")
    flags.DEFINE_integer("crop_size", 384, "Side of the stored square crop, pixels.")
    flags.DEFINE_float("crop_margin", 1.5, "Crop side in person boxes (200 * adjusted scale px): 1.5 leaves room "
                       "for rotation +-30 deg and zoom 0.75-1.25 of a 256 px model input.")
    flags.DEFINE_integer("max_people", 0, "Convert only the first N people of each split (0 = all).")
    flags.DEFINE_integer("num_workers", workers.available_cpus(), "Image decoding/cropping processes.")
    flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of the stored crops.")
    flags.DEFINE_string("val_gt", None, "detections_our_format-style .mat whose head boxes are given to the val "
                        "people, in order (checked against their joints).")
    flags.DEFINE_string("val_list", None, "Release .mat only: the val people, as a text file of 1-based "
                        "'annolist_index people_index' lines or an mpii_annotations.json[.gz] (its isValidation "
                        "people). Without it every release training person goes to 'train'.")
    flags.DEFINE_boolean("reduced_decode", True, "Decode large images at 1/2, 1/4 or 1/8 size when every crop of "
                         "the image downsamples at least that much (faster, same crop detail).")
    flags.DEFINE_boolean("progress", True, "Show a progress bar.")
    flags.mark_flags_as_required(["annotations", "images_dir", "output_dir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    manifest = convert(FLAGS.annotations, FLAGS.images_dir, FLAGS.output_dir, FLAGS.splits,
                       FLAGS.num_shards, FLAGS.crop_size, FLAGS.crop_margin, FLAGS.max_people,
                       FLAGS.num_workers, FLAGS.jpeg_quality, FLAGS.val_gt, FLAGS.val_list,
                       FLAGS.reduced_decode, FLAGS.progress, FLAGS.json_split)
    print_summary(manifest, FLAGS.output_dir)


if __name__ == "__main__":
    run_converter(define_flags, main, "mpii_to_tfrecord")

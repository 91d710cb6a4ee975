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

import json
import math
import signal
import sys
from pathlib import Path
from typing import Sequence

from absl import app, flags

from data_prep import workers
from data_prep.crops import CropSettings, mark_duplicates
from data_prep.shards import plan_shards, write_json_atomic, write_shards
from kpt_tf import ownership
from kpt_tf.data import manifest as mf
from kpt_tf.data.manifest import MANIFEST_NAME
from kpt_tf.mpii.annotations import (
    SPLITS,
    AnnotationError,
    attach_validation_head_boxes,
    read_annotations,
    split_people,
)

DEFAULT_NUM_SHARDS = {"train": 8, "val": 2, "test": 4}
# Written by default even when empty (as before the test split existed); 'test' when the file holds test people.
ALWAYS_WRITTEN_SPLITS = ("train", "val")


class ConversionError(ValueError):
    """A fatal problem with the converter's inputs or flags (reported without a traceback)."""


# --------------------------------------------------------------------------------------------------
# The conversion
# --------------------------------------------------------------------------------------------------

def parse_num_shards(value, splits: Sequence[str]) -> dict[str, int]:
    """'8' (every split), 'train=8,val=2', an int or a dict -> {split: count >= 1} for `splits`."""
    if isinstance(value, dict):
        table = dict(value)
    elif isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        table = {s: int(value) for s in splits}
    else:
        table = {}
        for item in str(value).split(","):
            if not item.strip():
                continue
            name, sep, count = item.partition("=")
            if not sep or not count.strip().lstrip("-").isdigit():
                raise ConversionError(f"--num_shards {value!r}: expected an integer or 'split=count,...'")
            table[name.strip()] = int(count)
    for split in splits:
        table.setdefault(split, DEFAULT_NUM_SHARDS.get(split, 1))
    if bad := {s: n for s, n in table.items() if n < 1}:
        raise ConversionError(f"--num_shards: shard counts must be >= 1, got {bad}")
    if unknown := sorted(set(table) - set(SPLITS)):
        raise ConversionError(f"--num_shards names unknown splits {unknown} (known: {', '.join(SPLITS)})")
    return {s: table[s] for s in splits}


def parse_splits(value) -> list[str]:
    splits = [s.strip() for s in (value.split(",") if isinstance(value, str) else value) if s.strip()]
    if not splits:
        raise ConversionError("--splits is empty")
    if unknown := [s for s in splits if s not in SPLITS]:
        raise ConversionError(f"--splits: unknown split(s) {unknown}; known: {', '.join(SPLITS)}")
    return list(dict.fromkeys(splits))


def _check_settings(crop_size, crop_margin, max_people, num_workers, jpeg_quality):
    if not 8 <= crop_size <= 4096:
        raise ConversionError(f"--crop_size {crop_size}: expected 8..4096 pixels")
    if not (math.isfinite(crop_margin) and 1.0 <= crop_margin <= 4.0):
        raise ConversionError(f"--crop_margin {crop_margin}: expected 1.0..4.0 person boxes "
                              "(the crop must contain the person box)")
    if max_people < 0:
        raise ConversionError(f"--max_people {max_people}: expected >= 0 (0 = all)")
    if num_workers < 1:
        raise ConversionError(f"--num_workers {num_workers}: expected >= 1")
    if not 1 <= jpeg_quality <= 100:
        raise ConversionError(f"--jpeg_quality {jpeg_quality}: expected 1..100")


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
    _check_settings(crop_size, crop_margin, max_people, num_workers, jpeg_quality)
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
    images = list(dict.fromkeys(p.image for group in selected.values() for p in group))
    if not any((images_dir / image).is_file() for image in images):
        raise ConversionError(f"--images_dir {images_dir}: none of the {len(images)} images the annotations name "
                              f"is there (e.g. {images[0]}); is it the right directory?")
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

    output_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = output_dir / MANIFEST_NAME
    entries, all_num_shards = _previous_entries(manifest_path, content, num_shards)
    all_num_shards.update(num_shards)
    plans = plan_shards(selected, num_shards)
    reusable = set()
    for plan in plans:
        entry = entries.get(plan.file)
        if (entry and entry[mf.SHARD_READ] == len(plan.people) and (output_dir / plan.file).is_file()
                and mf.sha256_of_file(output_dir / plan.file) == entry[mf.SHARD_SHA256]):
            reusable.add(plan.file)
        else:
            entries.pop(plan.file, None)
    pending = [p for p in plans if p.file not in reusable]
    if reusable:
        print(f"mpii_to_tfrecord: {len(reusable)} complete shard(s) kept from a previous run, "
              f"{len(pending)} to write", file=sys.stderr)

    def save(complete: bool) -> dict:
        manifest = mf.build_manifest(entries, all_num_shards, flag_values, content, complete, SPLITS)
        write_json_atomic(manifest_path, manifest)
        return manifest

    save(complete=not pending)
    if pending:
        write_shards(pending, plans, output_dir, images_dir,
                     CropSettings(crop_size, float(crop_margin), jpeg_quality, bool(reduced_decode)),
                     num_workers, progress, entries, save)
    return save(complete=True)


def _previous_entries(manifest_path: Path, content: dict, num_shards: dict[str, int]):
    """Shard entries of a previous run in the same output_dir, refusing one made from other inputs."""
    if not manifest_path.is_file():
        return {}, {}
    try:
        previous = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = mf.entries_from_manifest(previous)
        previous_content = previous[mf.CONTENT]
        previous_shards = {s: v.get(mf.SPLIT_NUM_SHARDS) for s, v in previous.get(mf.SPLITS, {}).items()}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConversionError(f"{manifest_path} exists but is not a manifest of this converter ({e!r}); "
                              "use an empty --output_dir") from e
    if previous_content != content:
        changed = sorted(k for k in set(content) | set(previous_content)
                         if content.get(k) != previous_content.get(k))
        raise ConversionError(f"--output_dir {manifest_path.parent} holds records made with other inputs or "
                              f"settings (differs in: {', '.join(changed)}); use a new --output_dir or "
                              "empty this one")
    for split, count in num_shards.items():
        if previous_shards.get(split) not in (None, count):
            raise ConversionError(f"--output_dir {manifest_path.parent} holds split {split!r} in "
                                  f"{previous_shards[split]} shards, not {count}; use a new --output_dir")
    return entries, {s: n for s, n in previous_shards.items() if n is not None}


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
    for split, counts in manifest[mf.SPLITS].items():
        print(f"{split}: read {counts[mf.SPLIT_READ]}, written {counts[mf.SPLIT_WRITTEN]}, skipped "
              f"{counts[mf.SPLIT_SKIPPED]} ({counts[mf.SPLIT_NUM_SHARDS]} shards)")
    for line in skip_summary(manifest[mf.SKIPPED]):
        print(line)
    for line in empty_split_warnings(manifest):
        print(line, file=sys.stderr)
    print(f"manifest: {Path(FLAGS.output_dir) / MANIFEST_NAME} (every skipped person, with the reason)")
    if not any(c[mf.SPLIT_WRITTEN] for c in manifest[mf.SPLITS].values()):
        raise ConversionError("no person could be converted (see the reasons above)")


def skip_summary(skipped: Sequence[dict], examples: int = 3) -> list[str]:
    """One line per skip reason, however many people it holds: how many people of how many images, and the
    first few (25,199 people of images absent from --images_dir are one line, not 25,199)."""
    reasons: dict[str, list] = {}
    for s in skipped:
        reasons.setdefault(s[mf.SKIP_REASON], []).append(s)
    lines = []
    for reason, who in sorted(reasons.items()):
        images = list(dict.fromkeys(s[mf.SKIP_IMAGE] for s in who))
        shown = ", ".join(f"{s[mf.SKIP_IMAGE]} person {s[mf.SKIP_PERSON]}" for s in who[:examples])
        lines.append(f"  skipped, {reason}: {len(who)} people of {len(images)} images "
                     f"({shown}{', ...' if len(who) > examples else ''})")
    return lines


def empty_split_warnings(manifest: dict) -> list[str]:
    """A line for each split that read people but wrote none, with the reason most of them were skipped (training
    on such a split would run on nothing; kpt_tf.train refuses it)."""
    lines = []
    for split, counts in manifest[mf.SPLITS].items():
        if counts[mf.SPLIT_READ] and not counts[mf.SPLIT_WRITTEN]:
            reasons: dict[str, int] = {}
            for s in manifest[mf.SKIPPED]:
                if s[mf.SKIP_SPLIT] == split:
                    reasons[s[mf.SKIP_REASON]] = reasons.get(s[mf.SKIP_REASON], 0) + 1
            reason, count = max(reasons.items(), key=lambda item: item[1]) if reasons else ("unknown", 0)
            lines.append(f"warning: split {split!r} wrote no person: {reason} for {count:,} of its "
                         f"{counts[mf.SPLIT_READ]:,} people")
    return lines


def _exit_on_sigterm(signum, frame):
    # SystemExit unwinds normally: unfinished shards are abandoned as .tmp files and the workers stopped.
    raise SystemExit(f"mpii_to_tfrecord: stopped by signal {signum}; rerun the same command to finish")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    define_flags()
    from kpt_tf import cli

    cli.run(main, "mpii_to_tfrecord")

"""Offline converter: COCO person keypoints + images -> sharded TFRecords of person crops (kpt_tf.data.schema, the
coco17 layout's 17 joints).

    python -m data_prep.coco_to_tfrecord --annotations person_keypoints_val2017.json --images_dir val2017
        --output_dir /data/coco/records [--split val]

The same records, shards, manifest and resumable reruns as MPII's converter (data_prep.mpii_to_tfrecord, through
data_prep.conversion); the manifest names the layout (coco17), from which training, evaluation and transfer learn
which joints the records hold. One annotation file is one split (COCO ships train2017 and val2017 separately):
`--split`, or read from the file name.

People are read as HRNet and mmpose read them (kpt_tf.coco.annotations): the crop is built around the annotated
box clipped to the image, its longer side x 1.25 (aspect ratio 1: the inputs are square), covering `crop_margin`
such boxes; crowd regions, people without a labelled keypoint and boxes empty after clipping are skipped and
counted in the manifest with their reason.
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags

from data_prep import workers
from data_prep.conversion import (
    SPLIT_CONTENT,
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
from kpt_tf.coco.annotations import COCO_LAYOUT, read_coco_annotations
from kpt_tf.data import manifest as mf
from kpt_tf.layouts import layout
from kpt_tf.mpii.person import AnnotationError

PROGRAM = "coco_to_tfrecord"
COCO_SPLITS = ("train", "val")


def split_of(annotations: Path, split: str | None) -> str:
    """The split of a COCO annotation file: `split` when given, else its name (person_keypoints_train2017.json)."""
    if split:
        if split not in COCO_SPLITS:
            raise ConversionError(f"--split {split!r}: expected one of {', '.join(COCO_SPLITS)}")
        return split
    named = [s for s in COCO_SPLITS if s in annotations.name.lower()]
    if len(named) != 1:
        raise ConversionError(f"--annotations {annotations.name}: the file name does not say train or val; give "
                              "--split")
    return named[0]


def convert(annotations, images_dir, output_dir, *args, **kwargs) -> dict:
    """Convert holding `output_dir`'s lock (kpt_tf.ownership: two converters on one directory are refused)."""
    with ownership.owned(output_dir, f"data_prep.{PROGRAM}"):
        return _convert(annotations, images_dir, output_dir, *args, **kwargs)


def _convert(annotations, images_dir, output_dir, split: str | None = None, num_shards=None, crop_size: int = 384,
             crop_margin: float = 1.5, max_people: int = 0, num_workers: int = 1, jpeg_quality: int = 95,
             reduced_decode: bool = True, progress: bool = True) -> dict:
    """Convert; -> the manifest (also written to output_dir/manifest.json). Raises ConversionError."""
    check_settings(crop_size, crop_margin, max_people, num_workers, jpeg_quality)
    annotations, images_dir, output_dir = Path(annotations), Path(images_dir), Path(output_dir)
    if not images_dir.is_dir():
        raise ConversionError(f"--images_dir {images_dir} is not a directory")
    split = split_of(annotations, split)
    try:
        people = read_coco_annotations(annotations, split)
    except AnnotationError as e:
        raise ConversionError(str(e)) from e
    if not people:
        raise ConversionError(f"--annotations {annotations}: holds no person annotation")
    mark_duplicates(people)
    selected = {split: people[:max_people or None]}
    check_images_present(selected, images_dir, annotations)
    num_shards = parse_num_shards({} if num_shards is None else num_shards, [split])
    flag_values = {"annotations": str(annotations), "images_dir": str(images_dir), "output_dir": str(output_dir),
                   "split": split, "num_shards": num_shards, "crop_size": crop_size, "crop_margin": crop_margin,
                   "max_people": max_people, "num_workers": num_workers, "jpeg_quality": jpeg_quality,
                   "reduced_decode": bool(reduced_decode)}
    # What decides the bytes of a shard (paths are not: moved inputs give the same records). One run writes one
    # split; train2017 and val2017 go into one directory by two runs, each split keeping its own annotations.
    content = {"layout": COCO_LAYOUT, "crop_size": crop_size, "crop_margin": crop_margin,
               "jpeg_quality": jpeg_quality, "reduced_decode": bool(reduced_decode),
               SPLIT_CONTENT: {**_previous_splits(output_dir), split: {
                   "annotations_sha256": mf.sha256_of_file(annotations), "max_people": max_people}}}
    return write_records(selected, images_dir, output_dir,
                         CropSettings(crop_size, float(crop_margin), jpeg_quality, bool(reduced_decode)),
                         num_shards, flag_values, content, layout=layout(COCO_LAYOUT), num_workers=num_workers,
                         progress=progress, program=PROGRAM)


def _previous_splits(output_dir: Path) -> dict:
    """The per-split content of the records already in `output_dir` (none when it holds no readable manifest: the
    shared write step then says what is wrong with it)."""
    previous = mf.read_manifest(output_dir)
    splits = previous.get(mf.CONTENT, {}).get(SPLIT_CONTENT) if isinstance(previous, dict) else None
    return dict(splits) if isinstance(splits, dict) else {}


FLAGS = flags.FLAGS


def define_flags():
    """The CLI flags; defined only when run as a program (absl flags are global)."""
    flags.DEFINE_string("annotations", None, "COCO person keypoints: person_keypoints_train2017.json or "
                        "person_keypoints_val2017.json (or a file of the same format).")
    flags.DEFINE_string("images_dir", None, "Directory holding the images (file_name as in the annotations), e.g. "
                        "val2017/.")
    flags.DEFINE_string("output_dir", None, "Where the shards and manifest.json go (created).")
    flags.DEFINE_enum("split", None, list(COCO_SPLITS), "The file's split; default: from its name.")
    flags.DEFINE_string("num_shards", None, "Shards of the split (default: train 8, val 2).")
    flags.DEFINE_integer("crop_size", 384, "Side of the stored square crop, pixels.")
    flags.DEFINE_float("crop_margin", 1.5, "Crop side in person boxes (the annotated box's longer side x 1.25).")
    flags.DEFINE_integer("max_people", 0, "Convert only the first N person annotations (0 = all).")
    flags.DEFINE_integer("num_workers", workers.available_cpus(), "Image decoding/cropping processes.")
    flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of the stored crops.")
    flags.DEFINE_boolean("reduced_decode", True, "Decode large images at 1/2, 1/4 or 1/8 size when every crop of "
                         "the image downsamples at least that much (faster, same crop detail).")
    flags.DEFINE_boolean("progress", True, "Show a progress bar.")
    flags.mark_flags_as_required(["annotations", "images_dir", "output_dir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    manifest = convert(FLAGS.annotations, FLAGS.images_dir, FLAGS.output_dir, FLAGS.split, FLAGS.num_shards,
                       FLAGS.crop_size, FLAGS.crop_margin, FLAGS.max_people, FLAGS.num_workers, FLAGS.jpeg_quality,
                       FLAGS.reduced_decode, FLAGS.progress)
    print_summary(manifest, FLAGS.output_dir)


if __name__ == "__main__":
    run_converter(define_flags, main, PROGRAM)

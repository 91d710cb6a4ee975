"""The generator's CLI.

    python -m data_prep.synth --output_dir /tmp/synth --num_train 2000 --num_val 400 --seed 0
    python -m data_prep.synth --output_dir /tmp/synth_real --from_annotations mpii_annotations.json.gz

`--from_annotations FILE` renders figures at the real poses, centres and scales of an MPII annotation
file instead (same image names and sizes, records copied, `headbox` added).
"""

from __future__ import annotations

from absl import app, flags

from data_prep.synth.from_annotations import render_from_annotations
from data_prep.synth.generate import generate

FLAGS = flags.FLAGS


def define_flags():
    """CLI flags (defined only when run as a program, so importing this module defines none)."""
    flags.DEFINE_string("output_dir", None, "Where images/, annotations.json and gt_val.mat are written.")
    flags.DEFINE_integer("num_train", 2000, "Training people to generate.")
    flags.DEFINE_integer("num_val", 400, "Validation people to generate.")
    flags.DEFINE_integer("seed", 0, "Random seed (same seed, same bytes).")
    flags.DEFINE_integer("num_workers", None, "Worker processes (default: the CPUs this process may use).")
    flags.DEFINE_string("from_annotations", None,
                        "Render at the poses of this mpii_annotations-style .json/.json.gz instead "
                        "(--num_train/--num_val are then ignored).")
    flags.DEFINE_integer("max_people", None, "With --from_annotations: only the file's first K people.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    try:
        if FLAGS.from_annotations:
            summary = render_from_annotations(FLAGS.from_annotations, FLAGS.output_dir, FLAGS.max_people,
                                              FLAGS.seed, FLAGS.num_workers)
        else:
            if FLAGS.max_people is not None:
                raise ValueError("--max_people only applies with --from_annotations")
            summary = generate(FLAGS.output_dir, FLAGS.num_train, FLAGS.num_val, FLAGS.seed, FLAGS.num_workers)
    except (ValueError, OSError) as e:       # bad numbers, missing/unreadable input, unwritable output
        raise app.UsageError(str(e)) from None
    print(f"synth: {summary['people']} people ({summary['val']} val) in {summary['images']} images, "
          f"{summary['seconds']:.1f} s ({summary['people_per_second']:.0f} people/s) -> {summary['output_dir']}")


# Guarded: worker processes import the parent's __main__ module (data_prep.workers), which must not run the CLI.
if __name__ == "__main__":
    define_flags()
    from kpt_tf import cli

    cli.run(main, "data_prep.synth")

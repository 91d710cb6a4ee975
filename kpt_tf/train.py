r"""Train a pose network: `python -m kpt_tf.train --config configs/hg2_256.py --workdir W [--config.x=y]`.

`model.fit` under `tf.distribute.MirroredStrategy` (all local GPUs, or `--config.train.num_cpu_replicas=N`
logical CPUs) or, with `--config.train.strategy=multi_worker`, `MultiWorkerMirroredStrategy` over the
`TF_CONFIG` cluster (`python -m kpt_tf.launch` starts such workers on one machine), XLA per `train.xla`,
validation PCKh every epoch, TensorBoard, best-PCKh checkpoint, a backup after every epoch (`training.resume`: a
killed run resumes where it stopped), a CSV of per-epoch metrics.
`--dry_run` builds the model, prints its summary and, as its last line, a JSON object
`{"params", "flops_per_image", "joints"}` plus what the trainer adds (the `distill` trainer: the teacher's
`teacher_params` and `teacher_flops_per_image`, `alpha`, `loss`), and exits without touching data.

`train.trainer` picks what the compiled step computes (`pose`; `distill`: Fast Pose Distillation from a frozen
teacher, keys under `config.distill`, e.g. `--config configs/fpd_demo.py --config.distill.teacher=T`;
`python -m kpt_tf.distill` is this program with `train.trainer=distill`).

A workdir prepared by `kpt_tf.transfer` (it holds `init.keras`) starts from those weights.
"""

from __future__ import annotations

import json

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS


def define_flags():
    """The CLI flags; defined only when run as a program (`python -m kpt_tf.train` or `kpt_tf.distill`), so that
    importing this module defines none (absl flags are global)."""
    config_flags.DEFINE_config_file("config", None, "Training config file (configs/*.py).")
    flags.DEFINE_string("workdir", None, "Where checkpoints, logs and the trained model go.")
    flags.DEFINE_bool("dry_run", False, "Build the model, print summary and a JSON line, exit.")


def main(argv, trainer: str | None = None):
    """`trainer`: the `train.trainer` every run of the program uses (`python -m kpt_tf.distill`: "distill")."""
    del argv
    config = FLAGS.config
    if config is None:
        raise app.UsageError("--config is required (e.g. --config configs/hg2_256.py)")
    from kpt_tf.training import loop
    from kpt_tf.training.trainer import resolve_trainer_config, trainer_class

    if trainer is not None:
        config.train.trainer = trainer
    # An unknown trainer, or a bad value in its own config section, is refused before anything is built or written.
    resolve_trainer_config(config)
    if FLAGS.dry_run:
        report = loop.dry_run(config)
        report.update(trainer_class(config).dry_run(config))
        print(json.dumps(report))
        return 0
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required unless --dry_run")
    result = loop.train(config, FLAGS.workdir)
    print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=1))
    return 0


if __name__ == "__main__":
    define_flags()
    from kpt_tf import cli

    cli.run(main, "kpt_tf.train")

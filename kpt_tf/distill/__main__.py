r"""Distil a student from a frozen teacher: `python -m kpt_tf.distill --config configs/fpd_X.py --workdir W`.

The same training as `kpt_tf.train` (model.fit under MirroredStrategy, XLA setting, BackupAndRestore,
TensorBoard with the ground-truth and teacher terms per stack, validation PCKh, the same workdir layout) with the
`distill` trainer. `--dry_run` builds student and teacher architectures (the teacher's from
`distill.teacher_model`, without its weights) and prints, as its last line, a JSON object with the parameters and
FLOPs of both and alpha.
"""

from __future__ import annotations

import json
import os

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Distillation config (configs/fpd_*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the student's checkpoints, logs and model go.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Build student and teacher, print their sizes as JSON, exit.")


def dry_run(config) -> dict:
    from kpt_tf.joints import JointSubset
    from kpt_tf.models import build_net
    from kpt_tf.models.flops import flops_per_image
    from kpt_tf.models.weights import trainable_parameter_count

    subset = JointSubset.parse(config.joints)
    student = build_net(config, subset)
    teacher_config = config.copy_and_resolve_references()
    teacher_config.model = config.distill.teacher_model
    teacher = build_net(teacher_config, JointSubset.parse("all"))
    return {"student_params": trainable_parameter_count(student), "teacher_params": trainable_parameter_count(teacher),
            "student_flops_per_image": int(flops_per_image(student)),
            "teacher_flops_per_image": int(flops_per_image(teacher)), "alpha": float(config.distill.alpha),
            "joints": list(subset.names)}


def main(argv):
    del argv
    config = _CONFIG.value
    if config is None:
        raise app.UsageError("--config is required (e.g. --config configs/fpd_hg8_to_4x128.py)")
    if "distill" not in config:
        raise app.UsageError("the config has no `distill` section (see configs/fpd_hg8_to_4x128.py)")
    config.train.trainer = "distill"
    if _DRY_RUN.value:
        print(json.dumps(dry_run(config)))
        return 0
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required unless --dry_run")
    from kpt_tf.distill.teacher import TeacherError
    from kpt_tf.training import loop

    try:
        result = loop.train(config, _WORKDIR.value)
    except TeacherError as e:
        raise app.UsageError(str(e)) from None
    print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from kpt_tf import cli

    cli.run(main, "kpt_tf.distill")

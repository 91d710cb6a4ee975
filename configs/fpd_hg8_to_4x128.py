"""Fast Pose Distillation's published pair on MPII: an 8 x 256 hourglass teacher (trained, frozen) distilled into a
4 x 128 student with FPD's scaled stem, on every student stack: (1 - alpha) * MSE(gt) + alpha * MSE(teacher).

Schedule of the authors' code: Adam 2.5e-4, 140 epochs, x0.1 at 90 and 120, sigma 2, flip test. The teacher is given
on the command line: `--config.distill.teacher=runs/hg8` (a workdir, a .keras file or an exported SavedModel).
"""

from configs.base import add_section
from configs.fpd_student_4x128 import get_config as student_config
from configs.hg8_256 import get_config as teacher_config


def get_config():
    c = student_config()
    c.name = "fpd_hg8_to_4x128"
    c.train.trainer = "distill"
    c.train.optimizer = "adam"
    c.train.learning_rate = 2.5e-4
    c.train.epochs = 140
    c.train.lr_drop_epochs = (90, 120)
    teacher_model = teacher_config().model
    add_section(c, "distill", dict(
        teacher="",                  # required: the trained teacher (workdir, .keras or SavedModel)
        alpha=0.5,                   # weight of the teacher term
        init_student="",             # optional: start from a trained student (FPD's best-reported protocol)
        kd_on_all_joints=False,      # teacher term also where the ground truth is not annotated
        teacher_model=teacher_model,  # the teacher's architecture, for --dry_run (the real one comes from its file)
    ))
    return c

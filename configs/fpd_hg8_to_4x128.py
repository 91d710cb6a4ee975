"""Fast Pose Distillation's published pair on MPII: an 8 x 256 hourglass teacher (trained, frozen) distilled into a
4 x 128 student with FPD's scaled stem, on every student stack: (1 - alpha) * MSE(gt) + alpha * MSE(teacher).

Schedule of the authors' code: Adam 2.5e-4, 140 epochs, x0.1 at 90 and 120, sigma 2, flip test. The teacher is given
on the command line: `--config.distill.teacher=runs/hg8` (a workdir, a .keras file or an exported SavedModel).
"""

from configs.base import add_section
from configs.fpd_student_4x128 import get_config as student_config
from configs.hg8_256 import get_config as teacher_config
from kpt_tf.training.trainer import trainer_section


def get_config():
    c = student_config()
    c.name = "fpd_hg8_to_4x128"
    c.train.trainer = "distill"
    c.train.optimizer = "adam"
    c.train.learning_rate = 2.5e-4
    c.train.epochs = 140
    c.train.lr_drop_epochs = (90, 120)
    teacher_model = teacher_config().model
    # The distillation keys, with their defaults, are declared in kpt_tf/distill/trainer.py. `teacher` is required
    # (`--config.distill.teacher=`); `init_student` (FPD's best-reported protocol starts from a trained student) is
    # optional; `teacher_model` is the teacher's architecture for --dry_run (the real one comes from its file).
    add_section(c, "distill", trainer_section("distill", teacher_model=teacher_model))
    return c

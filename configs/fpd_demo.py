"""Fast Pose Distillation on the embedded data set: a half-width student (2 stacks x 32) of the demo network
learns from a frozen, stronger teacher (2 stacks x 128, the same schedule), with FPD's loss on every student
stack, in the benchmark setting (configs/embedded_bench.py) on all joints. The four-arm protocol
(`python -m kpt_tf.experiments.fpd`) reads the `experiment` section; a single distillation run is
`python -m kpt_tf.train --config configs/fpd_demo.py --config.distill.teacher=T`, where T is any trained model
with the student's joints and 128-px crops (e.g. the demo's `runs/demo/train`).
"""

from configs.base import add_section
from configs.embedded_bench import get_config as bench_config
from configs.embedded_bench import use_first_schedule
from kpt_tf.training.trainer import trainer_section


def get_config():
    # the benchmark setting (issue 8) with the schedule its recorded results were measured with
    c = use_first_schedule(bench_config())
    c.name = "fpd_demo"
    c.joints = "all"
    c.model.num_stacks = 2           # FPD's student and teacher are multi-stack (loss on every student stack)
    teacher_model = c.model.copy_and_resolve_references()
    teacher_model.channels = 128          # the teacher: 4x the student's width, 14x its FLOPs
    c.model.channels = 32                 # the student: half the demo network's width
    c.train.trainer = "distill"
    c.train.skeleton_images = 0
    # The distillation keys, with their defaults, are declared in kpt_tf/distill/trainer.py. `teacher` empty: the
    # experiment trains `teacher_model` itself (kpt_tf.experiments.fpd); its continuation arms start from init.keras,
    # not from `init_student`.
    add_section(c, "distill", trainer_section("distill", teacher_model=teacher_model))
    add_section(c, "experiment", dict(
        seeds=(0, 1, 2),
        epochs=int(c.train.epochs),          # arms gt and fpd
        continue_epochs=int(c.train.epochs) // 2,   # arms gt_continued and fpd_continued, from gt's student
        # The gt student ends at the bottom of its cosine; restarting the continuation at the full rate would
        # undo part of it: both continuation arms restart at a third of it.
        continue_learning_rate=float(c.train.learning_rate) / 3,
        # The teacher's own schedule: 4x the width already puts it far above the student (see BUILD_NOTES
        # "Fast Pose Distillation"); twice the epochs would add ~23 min to a ~2 h experiment on 2 cores.
        teacher_epochs=int(c.train.epochs),
        teacher_joints="all",
    ))
    # --quick: minutes on 2 CPU cores (tiny networks, few steps): the test of the experiment's plumbing.
    add_section(c, "quick", dict(
        student_stacks=1, student_channels=16, teacher_stacks=1, teacher_channels=32, depth=2, input_size=64,
        batch_size=8, steps_per_epoch=6, epochs=2, continue_epochs=1, teacher_epochs=2, seeds=(0,)))
    return c

r"""Fast Pose Distillation's protocol as one experiment: `python -m kpt_tf.experiments.fpd --config
configs/fpd_demo.py --workdir W [--quick]`.

Four student arms on the same data, network and seeds:

    gt             the student on ground truth only, `experiment.epochs` epochs
    fpd            the student from scratch with FPD (ground truth + teacher), the same epochs
    gt_continued   the `gt` student of the same seed, `experiment.continue_epochs` more epochs on ground truth
    fpd_continued  the `gt` student of the same seed, the same extra epochs with FPD

`fpd_continued - gt_continued` is the fair comparison (equal epochs, equal start); `fpd - gt` is the
from-scratch one the FPD paper's users found negative. The teacher is `distill.teacher` when given, else the
experiment trains it once into `W/teacher` (the architecture `distill.teacher_model`, `experiment.teacher_epochs`
epochs on `experiment.teacher_joints`) and reuses it on reruns. Its own PCKh on the student's joints (same
validation people, same flip test) is reported beside the arms. Writes `results.json`, `results.md` and
`convergence.png` in W; finished runs are reused, so an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from absl import app

from kpt_tf import workdir as wd
from kpt_tf.experiments.runs import define_flags, required_flags, train_once

ARMS = ("gt", "fpd", "gt_continued", "fpd_continued")
COMPARISONS = (("fpd", "gt"), ("fpd_continued", "gt_continued"), ("gt_continued", "gt"))
TEACHER_DIR = "teacher"


def apply_quick(config):
    """The config shrunk to a few minutes on 2 CPU cores (--quick)."""
    c = copy.deepcopy(config)
    q = c.quick
    for model in (c.model, c.distill.teacher_model):
        model.depth, model.input_size = int(q.depth), int(q.input_size)
    c.model.num_stacks, c.model.channels = int(q.student_stacks), int(q.student_channels)
    c.distill.teacher_model.num_stacks = int(q.teacher_stacks)
    c.distill.teacher_model.channels = int(q.teacher_channels)
    c.train.batch_size, c.train.steps_per_epoch = int(q.batch_size), int(q.steps_per_epoch)
    e = c.experiment
    e.epochs, e.continue_epochs, e.teacher_epochs = int(q.epochs), int(q.continue_epochs), int(q.teacher_epochs)
    e.seeds = tuple(q.seeds)
    c.train.skeleton_images = 0
    return c


def teacher_config(config):
    """The teacher's training config: the experiment's data and schedule, the teacher's network and joints."""
    c = copy.deepcopy(config)
    c.model = copy.deepcopy(config.distill.teacher_model)
    c.joints = str(config.experiment.teacher_joints)
    c.train.trainer = "pose"
    c.train.epochs = int(config.experiment.teacher_epochs)
    c.train.seed = 0
    return c


def arm_config(config, arm: str, seed: int, teacher: str):
    """The training config of one student run."""
    c = copy.deepcopy(config)
    c.train.seed = int(seed)
    c.train.skeleton_images = 0
    continued = arm.endswith("_continued")
    c.train.epochs = int(config.experiment.continue_epochs if continued else config.experiment.epochs)
    if continued:
        c.train.learning_rate = float(config.experiment.continue_learning_rate)
    distilled = arm.startswith("fpd")
    c.train.trainer = "distill" if distilled else "pose"
    c.distill.teacher = teacher if distilled else ""
    c.distill.init_student = ""      # continuation arms start from init.keras, the same way for both
    return c


def teacher_scores(teacher_path, config) -> dict:
    """The teacher's validation PCKh on the student's joints (its channels picked by name, flip test as the
    student's validation): {"mean", "mean@0.1", "per_joint", ...} of `pckh.score_predictions`."""
    import tensorflow as tf

    from kpt_tf.data import pipeline
    from kpt_tf.data.records import config_subset
    from kpt_tf.inference import predict_dataset
    from kpt_tf.metrics import pckh
    from kpt_tf.models import codec_from_config
    from kpt_tf.trained import load_trained

    student_joints = config_subset(config)
    trained = load_trained(teacher_path)
    channels = tf.constant(trained.joints.channels_of(student_joints), tf.int32)
    heatmaps = trained.heatmaps_fn(bool(config.train.flip_test))
    codec = codec_from_config(config)
    ds = pipeline.make_dataset(config.data.dir, config.data.val_split, student_joints, pipeline.StreamOptions(
        batch_size=max(int(config.train.batch_size), 8), training=False, input_size=codec.input_size, with_meta=True))
    preds = predict_dataset(lambda images: tf.gather(heatmaps(images), channels, axis=-1), ds, codec)
    scores = pckh.score_predictions(preds, student_joints)
    scores.pop("counts")
    for split in ("visible", "occluded"):
        if split in scores:
            scores[split] = {k: v for k, v in scores[split].items() if k != "counts"}
    return scores


def _start_from(source_model: Path, run_dir: Path) -> None:
    """Put the `gt` student's best model in a continuation run's workdir as its starting weights."""
    if (run_dir / wd.INIT_MODEL).exists() or wd.is_finished(run_dir):
        return
    with wd.staged(run_dir, ".init-") as staging:
        shutil.copyfile(source_model, staging / wd.INIT_MODEL)


def run_experiment(config, workdir, quick: bool = False, log=print, verbose: int = 1) -> dict:
    from kpt_tf.experiments.report import summarise_arms, write_arms_report
    from kpt_tf.training import loop

    if quick:
        config = apply_quick(config)
    loop.require_data_dir(config)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    exp = config.experiment
    seeds = [int(s) for s in exp.seeds]

    teacher = str(config.distill.teacher or "")
    if not teacher:
        teacher_dir = workdir / TEACHER_DIR
        log(f"[fpd] teacher: {config.distill.teacher_model.num_stacks} x {config.distill.teacher_model.channels} "
            f"on {exp.teacher_joints}, {exp.teacher_epochs} epochs -> {teacher_dir}")
        train_once(teacher_config(config), teacher_dir, verbose)
        teacher = str(teacher_dir)
    from kpt_tf.data.records import config_subset
    from kpt_tf.distill.teacher import Teacher
    from kpt_tf.models import codec_from_config

    codec = codec_from_config(config)
    Teacher(teacher, config_subset(config), codec.input_size, codec.heatmap_size)  # refuse early
    teacher_score = teacher_scores(teacher, config)
    log(f"[fpd] teacher {teacher}: mean PCKh@0.5 {teacher_score['mean']:.2f} on the student's joints")

    runs: dict[str, dict[int, dict]] = {a: {} for a in ARMS}
    for seed in seeds:
        for arm in ARMS:
            run_dir = workdir / arm / f"seed{seed}"
            if arm.endswith("_continued"):
                _start_from(workdir / "gt" / f"seed{seed}" / wd.BEST_MODEL, run_dir)
            log(f"[fpd] arm {arm}, seed {seed}")
            runs[arm][seed] = train_once(arm_config(config, arm, seed, teacher), run_dir, verbose)

    summary = summarise_arms(runs, metric=config_subset(config).layout.pck_label, baseline="gt",
                             comparisons=COMPARISONS,
                             epoch_offsets={a: int(exp.epochs) for a in ARMS if a.endswith("_continued")})
    fair = summary["comparisons"][1]
    summary.update(
        teacher=teacher, teacher_pckh=teacher_score, alpha=float(config.distill.alpha),
        config=json.loads(config.to_json_best_effort()),
        verdict=(f"fpd_continued - gt_continued = {fair['mean']:+.2f} ± {fair['std']:.2f} mean PCKh over "
                 f"{len(fair['seeds'])} seed(s); FPD won {fair['wins']} of {len(fair['seeds'])}"))
    title = (f"FPD on {config.joints}: student {config.model.num_stacks} x {config.model.channels}, teacher "
             f"{teacher_score['mean']:.2f}, alpha {config.distill.alpha}")
    summary = write_arms_report(workdir, summary, title, log=log,
                                reference_lines={f"teacher ({teacher_score['mean']:.1f})": teacher_score["mean"]})
    with open(workdir / "results.md", "a") as f:
        f.write(f"\nTeacher ({teacher}) on the same people and joints: mean PCKh@0.5 "
                f"{teacher_score['mean']:.2f}, Mean@0.1 {teacher_score['mean@0.1']:.2f}.\n\n"
                f"Fair comparison: {summary['verdict']}.\n\n![convergence](convergence.png)\n")
    log(summary["verdict"])
    return summary


def main(argv):
    del argv
    config, workdir, quick = required_flags()
    if "experiment" not in config or "distill" not in config:
        raise app.UsageError("the config needs `distill` and `experiment` sections (see configs/fpd_demo.py)")
    from kpt_tf import ownership

    with ownership.owned(workdir, "kpt_tf.experiments.fpd"):   # one experiment per directory
        run_experiment(config, workdir, quick=quick)
    print((Path(workdir) / "results.md").read_text())
    return 0


if __name__ == "__main__":
    define_flags("Distillation experiment config (configs/fpd_*.py).",
                 "Where the teacher, every arm, the results and the plot go.")
    from kpt_tf import cli

    cli.run(main, "kpt_tf.experiments.fpd")

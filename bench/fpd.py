r"""Cost of Fast Pose Distillation's student against its teacher: parameters, FLOPs per image, and latency through
their exported SavedModels (the `serving_default` signature: crop, network with flip test, decode) at batch 1 and
32 on this machine, with the student / teacher ratios and the PCKh each keeps.

    .venv/bin/python -m bench.fpd --experiment runs/bench_fpd          # run (or reuse) the experiment, then time
    .venv/bin/python -m bench.fpd --teacher T --student S              # any two trained models (workdirs)

With --experiment, the four-arm protocol (`kpt_tf.experiments.fpd`, configs/fpd_demo.py) runs first on the
embedded data set generated into DIR/data unless DIR already holds its results; the timed student is the
`fpd_continued` arm of the first seed. Each model is exported into DIR/exports, loaded, warmed up, then timed
--repeats times per batch size with the two models interleaved call by call, so that load from other processes
hits both alike; the table shows medians. Goal of the issue: student latency <= 0.25x the teacher's at >= 97 %
of its PCKh.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

from absl import app, flags

flags.DEFINE_string("experiment", None, "FPD experiment directory (run here on the embedded data when unfinished).")
flags.DEFINE_string("teacher", None, "A trained teacher (workdir), instead of --experiment.")
flags.DEFINE_string("student", None, "A trained student (workdir), instead of --experiment.")
flags.DEFINE_string("arm", "fpd_continued", "--experiment: the arm whose student is timed.")
flags.DEFINE_list("batch_sizes", ["1", "32"], "Batch sizes timed.")
flags.DEFINE_integer("repeats", 15, "Timed calls per model and batch size (median reported).")
flags.DEFINE_integer("image_size", 256, "Side of the square uint8 test images (one person box each).")
flags.DEFINE_integer("num_train", 12000, "--experiment: generated training people.")
flags.DEFINE_integer("num_val", 250, "--experiment: generated validation people.")
flags.DEFINE_bool("quick", False, "--experiment: run the experiment with --quick (plumbing, not figures).")
FLAGS = flags.FLAGS


def run_or_reuse_experiment(directory: Path) -> dict:
    results = directory / "results.json"
    if results.is_file():
        return json.loads(results.read_text())
    from configs.fpd_demo import get_config
    from data_prep.embedded import ensure_embedded_dataset
    from kpt_tf.experiments.fpd import run_experiment

    config = get_config()
    size = int(config.quick.input_size if FLAGS.quick else config.model.input_size)
    config.data.dir = str(ensure_embedded_dataset(directory / "data", FLAGS.num_train, FLAGS.num_val, seed=0,
                                                  input_size=size))
    return run_experiment(config, directory, quick=FLAGS.quick, log=lambda *a: print(*a, flush=True))


def model_facts(workdir_path: Path, export_dir: Path) -> dict:
    """Parameters, FLOPs and best validation PCKh of a trained workdir, and its exported SavedModel."""
    import tensorflow as tf

    from kpt_tf import workdir as wd
    from kpt_tf.export import export_workdir
    from kpt_tf.models.flops import flops_per_image
    from kpt_tf.models.weights import trainable_parameter_count
    from kpt_tf.trained import load_trained

    trained = load_trained(workdir_path)
    if not (export_dir / "saved_model.pb").is_file():
        export_workdir(workdir_path, export_dir)
    summary_path = Path(workdir_path) / wd.TRAIN_SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return {"workdir": str(workdir_path), "params": trainable_parameter_count(trained.net),
            "flops": int(flops_per_image(trained.net)), "best_val_pckh_mean": summary.get("best_val_pckh_mean"),
            "serve": tf.saved_model.load(str(export_dir)).signatures["serving_default"],
            "shape": f"{trained.config.model.num_stacks} x {trained.config.model.channels}"}


def time_models(models: dict, batch_sizes, repeats: int, image_size: int) -> dict:
    """name -> batch -> median seconds of one `serving_default` call, the models interleaved call by call."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    out = {name: {} for name in models}
    for batch in batch_sizes:
        images = tf.constant(rng.integers(0, 256, (batch, image_size, image_size, 3), dtype=np.uint8))
        m = image_size / 8
        boxes = tf.constant(np.tile([[m, m, image_size - m, image_size - m]], (batch, 1)).astype(np.float32))
        times = {name: [] for name in models}
        for facts in models.values():      # warm-up: tracing, first allocations
            for _ in range(2):
                facts["serve"](images=images, boxes=boxes)["keypoints"].numpy()
        for _ in range(repeats):
            for name, facts in models.items():
                started = time.perf_counter()
                facts["serve"](images=images, boxes=boxes)["keypoints"].numpy()
                times[name].append(time.perf_counter() - started)
        for name in models:
            out[name][batch] = statistics.median(times[name])
    return out


def table(models: dict, latency: dict, batch_sizes, teacher_pckh=None, student_pckh=None) -> str:
    t, s = models["teacher"], models["student"]
    tp = teacher_pckh if teacher_pckh is not None else t["best_val_pckh_mean"]
    sp = student_pckh if student_pckh is not None else s["best_val_pckh_mean"]
    rows = [("network", t["shape"], s["shape"], ""),
            ("parameters", f"{t['params']:,}", f"{s['params']:,}", f"{s['params'] / t['params']:.3f}x"),
            ("GFLOPs per image", f"{t['flops'] / 1e9:.3f}", f"{s['flops'] / 1e9:.3f}",
             f"{s['flops'] / t['flops']:.3f}x")]
    for b in batch_sizes:
        lt, ls = latency["teacher"][b], latency["student"][b]
        rows.append((f"latency, batch {b} (ms)", f"{1e3 * lt:.1f}", f"{1e3 * ls:.1f}", f"{ls / lt:.3f}x"))
    if tp is not None and sp is not None:
        share = f"{100 * sp / tp:.1f} %" if tp > 0 else "-"     # a teacher at 0 (barely trained) has no share
        rows.append(("mean PCKh@0.5 (val)", f"{tp:.2f}", f"{sp:.2f}", share))
    lines = [f"{'':<26}{'teacher':>14}{'student':>14}{'student/teacher':>18}"]
    lines += [f"{a:<26}{b:>14}{c:>14}{d:>18}" for a, b, c, d in rows]
    if tp is not None and sp is not None:
        worst = max(latency["student"][b] / latency["teacher"][b] for b in batch_sizes)
        held = worst <= 0.25 and sp >= 0.97 * tp
        lines.append(f"goal (latency <= 0.25x at >= 97 % of the teacher's PCKh): {'met' if held else 'NOT met'} "
                     f"(worst latency ratio {worst:.3f}x, {100 * sp / tp:.1f} % of the PCKh)")
    return "\n".join(lines)


def main(argv):
    del argv
    import platform

    batch_sizes = [int(b) for b in FLAGS.batch_sizes]
    teacher_pckh = student_pckh = None
    if FLAGS.experiment:
        directory = Path(FLAGS.experiment)
        results = run_or_reuse_experiment(directory)
        seed = results["seeds"][0]
        teacher_dir, student_dir = Path(results["teacher"]), directory / FLAGS.arm / f"seed{seed}"
        teacher_pckh = results["teacher_pckh"]["mean"]
        exports = directory / "exports"
    elif FLAGS.teacher and FLAGS.student:
        teacher_dir, student_dir = Path(FLAGS.teacher), Path(FLAGS.student)
        exports = student_dir / "bench_exports"
    else:
        raise app.UsageError("give --experiment DIR, or --teacher and --student")
    models = {"teacher": model_facts(teacher_dir, exports / "teacher"),
              "student": model_facts(student_dir, exports / "student")}
    if teacher_pckh is not None:
        student_pckh = models["student"]["best_val_pckh_mean"]
    latency = time_models(models, batch_sizes, FLAGS.repeats, FLAGS.image_size)
    print(f"\nFPD cost on {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs "
          f"(serving_default through the SavedModel, {FLAGS.image_size}-px uint8 images, one box each, median of "
          f"{FLAGS.repeats})\nteacher: {teacher_dir}\nstudent: {student_dir}\n")
    print(table(models, latency, batch_sizes, teacher_pckh, student_pckh))


if __name__ == "__main__":
    from kpt_tf import cli

    cli.run(main, "bench.fpd")

r"""`make demo`: the project end to end on the embedded data set, in minutes on 2 CPU cores.

generate people -> convert to TFRecords -> predict-the-mean-pose baseline -> train the `demo` config on
all 16 joints -> evaluate (flip test, PCKh) -> export a SavedModel -> serve one full image through it and
draw the skeleton -> KPTransfer (source `upper` -> target `lower`: random vs transfer vs frozen, one seed)
-> summary printed and written to runs/demo/summary.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from absl import app, flags

def define_flags():
    """CLI flags (defined only when run as a program)."""
    flags.DEFINE_string("workdir", "runs/demo", "Where data, runs and the summary go.")
    flags.DEFINE_integer("num_train", 2000, "Generated training people.")
    flags.DEFINE_integer("num_val", 250, "Generated validation people.")
    flags.DEFINE_integer("epochs", 0, "Override the demo config's epochs (0 = keep).")
    flags.DEFINE_bool("kptransfer", True, "Run the KPTransfer upper -> lower comparison too.")
    flags.DEFINE_integer("kptransfer_epochs", 6, "Epochs of each KPTransfer run.")


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def run_demo(workdir: Path, num_train: int, num_val: int, epochs: int = 0, kptransfer: bool = True,
             kptransfer_epochs: int = 6) -> dict:
    from configs.demo import get_config
    from kpt_tf import evaluate
    from kpt_tf.embedded_data import ensure_embedded_dataset
    from kpt_tf.export import export_workdir
    from kpt_tf.serving import serve_annotated_image
    from kpt_tf.training import loop

    started = time.time()
    workdir.mkdir(parents=True, exist_ok=True)
    config = get_config()
    if epochs:
        config.train.epochs = epochs

    banner(f"1/6 embedded data set: {num_train} training + {num_val} validation people")
    records = ensure_embedded_dataset(workdir / "data", num_train, num_val, seed=0,
                                      input_size=int(config.model.input_size))
    config.data.dir = str(records)

    banner("2/6 baseline: the mean training pose placed in every validation crop")
    baseline = evaluate.mean_pose_baseline(config)
    print(baseline["table"])

    banner(f"3/6 training `demo` ({config.model.num_stacks} stacks x {config.model.channels}, "
           f"{config.model.input_size} px, {config.train.epochs} epochs) on all 16 joints")
    train_dir = workdir / "train"
    loop.train(config, train_dir)

    banner("4/6 evaluation of the best checkpoint (flip test, quarter-pixel decoding, PCKh)")
    result = evaluate.evaluate_model(train_dir / "best.keras", records, split=config.data.val_split,
                                     config=config)
    print(result["table"])

    banner("5/6 export SavedModel, serve one full image through it")
    savedmodel = export_workdir(train_dir, workdir / "savedmodel")
    png = serve_annotated_image(savedmodel, workdir / "data" / "synth", workdir / "skeleton.png")
    print(f"SavedModel: {savedmodel}\nskeleton drawn by the served model: {png}")

    out = {
        "mean_pckh": result["mean"], "per_joint_pckh": result["per_joint"],
        "baseline_mean_pckh": baseline["mean"], "savedmodel_dir": str(savedmodel),
        "tensorboard_dir": str(train_dir / "tensorboard"), "skeleton_png": str(png),
    }
    if kptransfer:
        banner(f"6/6 KPTransfer: upper -> lower, random vs transfer vs frozen ({kptransfer_epochs} epochs each)")
        out["kptransfer"] = run_kptransfer_demo(config, workdir / "kptransfer", kptransfer_epochs)
    out["seconds"] = round(time.time() - started, 1)
    (workdir / "summary.json").write_text(json.dumps(out, indent=1))

    banner("summary")
    print(f"mean PCKh@0.5 on {num_val} generated validation people: {out['mean_pckh']:.2f} "
          f"(predict-the-mean-pose baseline: {out['baseline_mean_pckh']:.2f})")
    if kptransfer:
        for arm, e in out["kptransfer"]["arms"].items():
            print(f"KPTransfer upper -> lower, {arm:<8}: mean PCKh@0.5 {e['mean_pckh']:.2f}")
        print(f"convergence plot: {out['kptransfer']['plot_png']}")
    print(f"SavedModel: {out['savedmodel_dir']}\nTensorBoard: tensorboard --logdir {out['tensorboard_dir']}\n"
          f"skeleton PNG: {out['skeleton_png']}\nsummary: {workdir / 'summary.json'} ({out['seconds']:.0f} s)")
    return out


KPTRANSFER_STEPS_PER_EPOCH = 60  # 960 crops an epoch: four runs fit the demo's time budget


def run_kptransfer_demo(config, workdir: Path, epochs: int) -> dict:
    from kpt_tf.experiments.kptransfer import experiment_from_training_config, run_experiment

    config = config.copy_and_resolve_references()
    config.train.steps_per_epoch = KPTRANSFER_STEPS_PER_EPOCH
    overall = run_experiment(experiment_from_training_config(config, ("upper", "lower"), (0,), epochs), workdir)
    step = overall["steps"][0]
    arms = {arm: {"mean_pckh": e["final_mean"],
                  "per_joint_pckh": {j: v["mean"] for j, v in e["per_joint"].items()},
                  "curve": e["curve_mean"]} for arm, e in step["arms"].items()}
    return {"source": "upper", "target": "lower", "arms": arms, "plot_png": step["plot_png"],
            "transfer_report": str(workdir / "step1_lower" / "transfer" / "seed0" / "transfer_report.json")}


def main(argv):
    del argv
    f = flags.FLAGS
    run_demo(Path(f.workdir), f.num_train, f.num_val, f.epochs, f.kptransfer, f.kptransfer_epochs)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    define_flags()
    app.run(main)

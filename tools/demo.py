r"""`make demo` (`python -m tools.demo`): the project end to end on the embedded data set, in minutes on 2 CPU cores.

generate people -> convert to TFRecords -> predict-the-mean-pose baseline -> train the `demo` config on
all 16 joints -> evaluate (flip test, PCKh) -> export a SavedModel -> serve one full image through it and
draw the skeleton -> KPTransfer (source `upper` -> target `lower`: random vs transfer vs frozen, one seed)
-> summary printed and written to runs/demo/summary.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from absl import flags


def define_flags():
    """CLI flags (defined only when run as a program)."""
    flags.DEFINE_string("workdir", "runs/demo", "Where data, runs and the summary go.")
    # 6,000 people: the 1,375 steps of 16 see each ~3.7 times (the net underfits: regime_exploration.md), and
    # generation + conversion take ~45 s on 2 cores (8,000: 56 s).
    flags.DEFINE_integer("num_train", 6000, "Generated training people.")
    flags.DEFINE_integer("num_val", 250, "Generated validation people.")
    flags.DEFINE_integer("epochs", 0, "Override the demo config's epochs (0 = keep).")
    flags.DEFINE_bool("kptransfer", True, "Run the KPTransfer upper -> lower comparison too.")
    # The four KPTransfer runs (source + 3 arms) get what the 12-minute demo leaves after the other stages
    # (~8 min): ~4 min, 3 x 50 batches of a 1-stack network each (178 s measured). One stack halves the per-run
    # start-up (tracing: 10 s against 20 s) and costs 0.61x per step (BUILD_NOTES.md); the 2-stack arms at 4 x 60
    # took 449 s, the whole demo 1,001 s. bench/kptransfer.py is the comparison to read; this one shows the steps.
    flags.DEFINE_integer("kptransfer_epochs", 3, "Epochs of each KPTransfer run.")
    flags.DEFINE_integer("kptransfer_stacks", 1, "Hourglass stacks of the KPTransfer runs' network.")


class StageClock:
    """Prints each stage with the elapsed time and an estimate of the time remaining.

    The estimate scales the stages' expected shares of the demo (measured on the build machine) by how fast
    this machine has been so far.
    """

    def __init__(self, expected_seconds: dict):
        self.expected = expected_seconds
        self.started = time.time()
        self.done: list[str] = []
        self.current: str | None = None

    def stage(self, key: str, text: str) -> None:
        if self.current is not None:
            self.done.append(self.current)
        self.current = key
        elapsed = time.time() - self.started
        expected_done = sum(self.expected[k] for k in self.done)
        remaining = sum(v for k, v in self.expected.items() if k not in self.done)
        speed = elapsed / expected_done if expected_done > 0 else 1.0
        number = list(self.expected).index(key) + 1
        print(f"\n=== {number}/{len(self.expected)} {text} ===  (elapsed {elapsed:.0f} s, about "
              f"{remaining * speed:.0f} s to go)", flush=True)

    def finish(self) -> float:
        return time.time() - self.started


# Seconds each stage took in the `make demo` of 2026-12-02 on 2 idle cores (BUILD_NOTES.md: 671 s in all).
# Only the time-remaining estimate uses them.
EXPECTED_STAGE_SECONDS = {"data": 42, "baseline": 3, "train": 408, "evaluate": 9, "export": 31, "kptransfer": 178}


def per_group(result: dict) -> dict:
    """PCKh@0.5 per MPII joint group (Head, Shoulder, ..., Ankle) from an evaluation result (HRNet table)."""
    table = result["report"]["hrnet"]
    return {k: v for k, v in table.items() if not k.startswith("Mean")}


def first_val_image(dataset_dir: Path):
    """(image path, centres [N, 2], scales [N]) of the people of the first validation image."""
    from kpt_tf.mpii import read_json_annotations

    people = [p for p in read_json_annotations(dataset_dir / "annotations.json")
              if p.split == "val" and p.objpos is not None]
    if not people:
        raise ValueError(f"{dataset_dir}: no validation person with a centre to serve")
    group = [p for p in people if p.image == people[0].image]
    return (dataset_dir / "images" / people[0].image, [p.objpos for p in group], [p.scale for p in group])


def run_demo(workdir: Path, num_train: int, num_val: int, epochs: int = 0, kptransfer: bool = True,
             kptransfer_epochs: int = 3, config=None, kptransfer_steps: int = 0, kptransfer_stacks: int = 1) -> dict:
    """The whole demo; `config` replaces configs/demo.py (tests shrink it), `kptransfer_steps` the KPTransfer
    runs' batches per epoch (0 = KPTRANSFER_STEPS_PER_EPOCH), `kptransfer_stacks` their network's stacks."""
    from configs.demo import get_config
    from data_prep.embedded import ensure_embedded_dataset
    from kpt_tf import evaluate
    from kpt_tf import workdir as wd
    from kpt_tf.export import export_workdir
    from kpt_tf.serving import draw_served_people
    from kpt_tf.training import loop

    clock = StageClock(EXPECTED_STAGE_SECONDS if kptransfer else
                       {k: v for k, v in EXPECTED_STAGE_SECONDS.items() if k != "kptransfer"})
    workdir.mkdir(parents=True, exist_ok=True)
    config = config if config is not None else get_config()
    if epochs:
        config.train.epochs = epochs

    clock.stage("data", f"embedded data set: {num_train} training + {num_val} validation people")
    records = ensure_embedded_dataset(workdir / "data", num_train, num_val, seed=0,
                                      input_size=int(config.model.input_size))
    config.data.dir = str(records)

    clock.stage("baseline", "baseline: the mean training pose placed in every validation crop")
    baseline = evaluate.mean_pose_baseline(config)
    print(baseline["table"])

    clock.stage("train", f"training `demo` ({config.model.num_stacks} stacks x {config.model.channels}, "
                f"{config.model.input_size} px, {config.train.epochs} epochs) on all 16 joints")
    train_dir = workdir / "train"
    loop.train(config, train_dir)

    clock.stage("evaluate", "evaluation of the best checkpoint (flip test, quarter-pixel decoding, PCKh)")
    result = evaluate.evaluate_model(train_dir, records, split=config.data.val_split, config=config)
    print(result["table"])

    clock.stage("export", "export SavedModel, serve one full image through it")
    savedmodel = export_workdir(train_dir, workdir / "savedmodel")
    png = draw_served_people(savedmodel, *first_val_image(workdir / "data" / "synth"), workdir / "skeleton.png")
    print(f"SavedModel: {savedmodel}\nskeleton drawn by the served model: {png}")

    out = {
        "mean_pckh": result["mean"], "per_joint_pckh": result["per_joint"], "per_group_pckh": per_group(result),
        "baseline_mean_pckh": baseline["mean"], "baseline_per_group_pckh": per_group(baseline),
        "savedmodel_dir": str(savedmodel), "train_workdir": str(train_dir), "records_dir": str(records),
        "tensorboard_dir": str(train_dir / wd.TENSORBOARD), "skeleton_png": str(png),
    }
    if kptransfer:
        clock.stage("kptransfer", f"KPTransfer: upper -> lower, random vs transfer vs frozen "
                    f"({kptransfer_stacks}-stack network, {kptransfer_epochs} epochs each)")
        out["kptransfer"] = run_kptransfer_demo(config, workdir / "kptransfer", kptransfer_epochs,
                                                kptransfer_steps or KPTRANSFER_STEPS_PER_EPOCH, kptransfer_stacks)
    out["seconds"] = round(clock.finish(), 1)
    (workdir / "summary.json").write_text(json.dumps(out, indent=1))

    print("\n=== summary ===")
    print(f"mean PCKh@0.5 on {num_val} generated validation people: {out['mean_pckh']:.2f} "
          f"(predict-the-mean-pose baseline: {out['baseline_mean_pckh']:.2f})")
    print("  " + "  ".join(f"{k} {v:.1f} ({out['baseline_per_group_pckh'][k]:.1f})"
                           for k, v in out["per_group_pckh"].items()))
    if kptransfer:
        for arm, e in out["kptransfer"]["arms"].items():
            print(f"KPTransfer upper -> lower, {arm:<8}: mean PCKh@0.5 {e['mean_pckh']:.2f}")
        print(f"convergence plot: {out['kptransfer']['plot_png']}")
    print(f"SavedModel: {out['savedmodel_dir']}\nTensorBoard: tensorboard --logdir {out['tensorboard_dir']}\n"
          f"skeleton PNG: {out['skeleton_png']}\nsummary: {workdir / 'summary.json'} ({out['seconds']:.0f} s)")
    return out


KPTRANSFER_STEPS_PER_EPOCH = 50  # 800 crops an epoch: four runs fit the demo's time budget


def run_kptransfer_demo(config, workdir: Path, epochs: int, steps_per_epoch: int, num_stacks: int) -> dict:
    from kpt_tf import workdir as wd
    from kpt_tf.experiments.kptransfer import experiment_from_training_config, run_experiment

    config = config.copy_and_resolve_references()
    config.train.steps_per_epoch = int(steps_per_epoch)
    config.model.num_stacks = int(num_stacks)
    overall = run_experiment(experiment_from_training_config(config, ("upper", "lower"), (0,), epochs), workdir)
    step = overall["steps"][0]
    arms = {arm: {"mean_pckh": e["final_mean"],
                  "per_joint_pckh": {j: v["mean"] for j, v in e["per_joint"].items()},
                  "curve": e["curve_mean"]} for arm, e in step["arms"].items()}
    return {"source": "upper", "target": "lower", "arms": arms, "plot_png": step["plot_png"],
            "transfer_report": str(workdir / "step1_lower" / "transfer" / "seed0" / wd.TRANSFER_REPORT_JSON)}


def main(argv):
    del argv
    f = flags.FLAGS
    run_demo(Path(f.workdir), f.num_train, f.num_val, f.epochs, f.kptransfer, f.kptransfer_epochs,
             kptransfer_stacks=f.kptransfer_stacks)


if __name__ == "__main__":
    define_flags()
    from kpt_tf import cli

    cli.run(main, "tools.demo")

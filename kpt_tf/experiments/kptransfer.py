r"""The KPTransfer experiment: `python -m kpt_tf.experiments.kptransfer --config configs/kptransfer_X.py
--workdir W [--quick]`.

For a chain of joint subsets (source S, then targets T1, T2, ...; a plain split is a chain of two):
train S; then train every target three ways -- random initialisation, transfer + fine-tune, frozen
weight extraction -- with the same data, schedule, epochs and seeds; each target's transfer arms start
from the previous step's model (the source for T1, T1's transfer arm of the same seed for T2, ...).
Per-joint PCKh@0.5 and @0.1 on the target are recorded every epoch. Writes, per target step,
`results.json`, `results.md` (per joint and mean: random, transfer, frozen, differences, mean +- std over
seeds; epochs to 95 % and 100 % of random's final mean PCKh) and convergence plots (PNG, shaded over
seeds), and an overall `results.json`/`results.md` in the workdir. Finished runs are reused on a rerun,
so an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from kpt_tf import workdir as wd
from kpt_tf.experiments.runs import define_flags, required_flags, train_once

ARMS = ("random", "transfer", "frozen")


def apply_quick(config):
    """The config shrunk to a few minutes on 2 CPU cores (--quick)."""
    c = copy.deepcopy(config)
    q = c.quick
    c.model.num_stacks, c.model.channels = int(q.num_stacks), int(q.channels)
    c.model.depth, c.model.input_size = int(q.depth), int(q.input_size)
    c.train.batch_size, c.train.steps_per_epoch = int(q.batch_size), int(q.steps_per_epoch)
    c.experiment.source_epochs, c.experiment.target_epochs = int(q.source_epochs), int(q.target_epochs)
    c.experiment.seeds = tuple(q.seeds)
    c.train.skeleton_images = 0
    return c


def experiment_from_training_config(config, steps, seeds, epochs: int, data_dirs=()):
    """A KPTransfer experiment over a plain training config (its network, data and schedule): the demo and
    bench/kptransfer.py use it; no step-schedule drops, no TensorBoard skeletons."""
    import ml_collections

    c = copy.deepcopy(config)
    c.train.skeleton_images = 0
    c.train.lr_drop_epochs = ()
    with c.unlocked():          # training configs are locked against typos; the experiment section is new
        c.experiment = ml_collections.ConfigDict(dict(
            steps=tuple(steps), data_dirs=tuple(data_dirs), seeds=tuple(int(s) for s in seeds), arms=ARMS,
            map_heads=True,
            source_epochs=int(epochs), target_epochs=int(epochs)))
    return c


def step_data_dirs(config) -> list[str]:
    """Each step's records: `experiment.data_dirs` (one per step; "" = `data.dir`), all `data.dir` when it is
    empty. Steps on different data sets (MPII's people, then COCO's) transfer by joint name across their layouts."""
    steps, dirs = list(config.experiment.steps), list(config.experiment.get("data_dirs") or ())
    if dirs and len(dirs) != len(steps):
        raise ValueError(f"config experiment.data_dirs has {len(dirs)} entries for {len(steps)} steps: give one "
                         "records directory per step (\"\" for data.dir)")
    return [str(d) or str(config.data.dir) for d in dirs] if dirs else [str(config.data.dir)] * len(steps)


def step_config(config, joints: str, epochs: int, seed: int, data_dir: str | None = None):
    """The training config of one run: the experiment's network and schedule on `joints` (of `data_dir`'s records,
    default the config's)."""
    c = copy.deepcopy(config)
    c.joints = joints
    if data_dir is not None:
        c.data.dir = data_dir
    c.train.epochs = int(epochs)
    c.train.seed = int(seed)
    # The step schedule is stated in epochs of the full run: keep its drops proportional.
    full = float(config.train.epochs) or 1.0
    c.train.lr_drop_epochs = tuple(int(round(e * epochs / full)) for e in config.train.lr_drop_epochs)
    return c


def _run_dirname(joints: str) -> str:
    return joints.replace(",", "_").replace("+", "_plus_").replace("-", "_minus_")


def _step_dir(workdir: Path, k: int, joints: str) -> Path:
    """Where step k of a chain (0: the source) keeps its runs."""
    return Path(workdir) / f"step{k}_{_run_dirname(joints)}"


def feeds_a_later_step(run: Path, num_steps: int) -> bool:
    """Whether a run (its path relative to the experiment's workdir) is in a step before the last of a chain of
    `num_steps` steps, so the next step transfers from its network."""
    prefix = Path(run).parts[0].split("_")[0]                    # step<k>, as _step_dir names it
    return prefix[4:].isdigit() and prefix.startswith("step") and int(prefix[4:]) < num_steps - 1


def _run_dir(step_dir: Path, arm: str, seed: int) -> Path:
    return step_dir / arm / f"seed{seed}"


def run_experiment(config, workdir, quick: bool = False, log=print, verbose: int = 1) -> dict:
    from kpt_tf.data.records import records_subset
    from kpt_tf.experiments.report import summarise_arms, write_arms_report
    from kpt_tf.training import loop
    from kpt_tf.transfer import transfer_to_workdir

    if quick:
        config = apply_quick(config)
    exp = config.experiment
    steps = list(exp.steps)
    if len(steps) < 2:
        raise ValueError(f"config experiment.steps needs a source and at least one target, got {steps}")
    arms = tuple(exp.arms)
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"config experiment.arms: unknown arm(s) {unknown}; choose from {ARMS}")
    seeds = [int(s) for s in exp.seeds]
    data_dirs = step_data_dirs(config)
    for joints, data_dir in zip(steps, data_dirs):       # before anything is written
        loop.require_data_dir(step_config(config, joints, 1, seeds[0], data_dir))
        records_subset(joints, data_dir)                 # a step's joints must exist in its records' layout
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    source_dir = _step_dir(workdir, 0, steps[0])
    log(f"[kptransfer] step 0: source {steps[0]} ({exp.source_epochs} epochs)")
    source = train_once(step_config(config, steps[0], exp.source_epochs, seeds[0], data_dirs[0]), source_dir,
                        verbose)
    previous = {s: source_dir / wd.BEST_MODEL for s in seeds}
    step_results = []
    for k, joints in enumerate(steps[1:], start=1):
        step_dir = _step_dir(workdir, k, joints)
        runs: dict[str, dict[int, dict]] = {a: {} for a in arms}
        for seed in seeds:
            for arm in arms:
                run_dir = _run_dir(step_dir, arm, seed)
                cfg = step_config(config, joints, exp.target_epochs, seed, data_dirs[k])
                # a finished run carried from another session (runs.carry_finished_runs) keeps only its summary
                if arm != "random" and not (run_dir / wd.INIT_MODEL).exists() and not wd.is_finished(run_dir):
                    transfer_to_workdir(previous[seed], cfg, run_dir, map_heads=bool(exp.map_heads),
                                        freeze=arm == "frozen", allow_partial=False, verbose=False)
                log(f"[kptransfer] step {k}: {_step_name(steps[k - 1], data_dirs[k - 1], data_dirs)} -> "
                    f"{_step_name(joints, data_dirs[k], data_dirs)}, arm {arm}, seed {seed}")
                runs[arm][seed] = train_once(cfg, run_dir, verbose)
            if "transfer" in arms:
                previous[seed] = _run_dir(step_dir, "transfer", seed) / wd.BEST_MODEL
        summary = summarise_arms(runs, metric=records_subset(joints, data_dirs[k]).layout.pck_label,
                                 baseline="random" if "random" in arms else None,
                                 comparisons=[(a, "random") for a in arms if a != "random" and "random" in arms])
        summary.update(source=_step_name(steps[k - 1], data_dirs[k - 1], data_dirs),
                       target=_step_name(joints, data_dirs[k], data_dirs))
        step_results.append(write_arms_report(step_dir, summary, step_title(summary), log=log))
    overall = {"config": json.loads(config.to_json_best_effort()), "source": {
        "joints": _step_name(steps[0], data_dirs[0], data_dirs), "best_val_pckh_mean": source["best_val_pckh_mean"],
        "metric": records_subset(steps[0], data_dirs[0]).layout.pck_label}, "steps": step_results}
    write_overall_report(workdir, overall)
    return overall


def run_source_ranking(config, workdir, quick: bool = False, log=print, verbose: int = 1) -> dict:
    """MI meets KPTransfer: rank `experiment.candidates` as sources for the target `experiment.steps[-1]` by the MI
    of joint locations in the training data (`kpt_tf.grouping.rank_sources`), then transfer into the target from the
    best- and the worst-ranked candidate (same seeds, epochs, data; random initialisation trained once, in the
    best's run) and report whether the ranking predicted which transfer gains more over random."""
    from kpt_tf.grouping.grouping import estimate, format_ranking, rank_sources
    from kpt_tf.training import loop

    if quick:
        config = apply_quick(config)
    loop.require_data_dir(config)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    target = str(config.experiment.steps[-1])
    ranking = rank_sources(estimate(config.data.dir, log=log), target, list(config.experiment.candidates))
    log(format_ranking(ranking))
    best, worst = ranking["ranking"][0]["source"], ranking["ranking"][-1]["source"]
    for label, source, arms in (("best", best, ("random", "transfer")), ("worst", worst, ("transfer",))):
        c = copy.deepcopy(config)
        with c.unlocked():
            c.experiment.steps = (source, target)
            c.experiment.arms = arms
            c.experiment.candidates = ()
        run_experiment(c, workdir / f"from_{label}", log=log, verbose=verbose)
    summary = _compare_ranked_sources(config, workdir, target, best, worst, log)
    arm_best, arm_worst = f"from_{best}", f"from_{worst}"
    best_vs_worst = summary["comparisons"][2]
    # The ranking "predicted" when the best-ranked source's transfer beats the worst-ranked's on the mean over seeds.
    result = {"target": target, "ranking": ranking, "best": best, "worst": worst,
              "random_final_mean": summary["arms"]["random"]["final_mean"],
              "transfer_final_mean": {"best": summary["arms"][arm_best]["final_mean"],
                                      "worst": summary["arms"][arm_worst]["final_mean"]},
              "gain_over_random": {"best": summary["comparisons"][0]["mean"],
                                   "worst": summary["comparisons"][1]["mean"]},
              "best_minus_worst": best_vs_worst,
              "ranking_predicted_the_gain": bool(best_vs_worst["mean"] > 0),
              "comparison": str(workdir / "results.json")}
    _write_ranking_report(workdir, result, format_ranking(ranking), log)
    return result


def _compare_ranked_sources(config, workdir: Path, target: str, best: str, worst: str, log) -> dict:
    """One comparison over the same seeds: random, transfer from the best-ranked source, from the worst-ranked
    (results.json and .md in `workdir`); -> the arms' summary."""
    from kpt_tf.experiments.report import summarise_arms, write_arms_report

    arm_best, arm_worst = f"from_{best}", f"from_{worst}"

    def training_summary(label, arm, seed):
        step_dir = _step_dir(workdir / f"from_{label}", 1, target)
        return json.loads((_run_dir(step_dir, arm, seed) / wd.TRAIN_SUMMARY).read_text())

    seeds = [int(s) for s in config.experiment.seeds]
    seed_runs = {"random": {s: training_summary("best", "random", s) for s in seeds},
                 arm_best: {s: training_summary("best", "transfer", s) for s in seeds},
                 arm_worst: {s: training_summary("worst", "transfer", s) for s in seeds}}
    from kpt_tf.data.records import records_subset

    metric = records_subset(target, step_data_dirs(config)[-1]).layout.pck_label
    summary = summarise_arms(seed_runs, metric=metric, baseline="random", comparisons=[
        (arm_best, "random"), (arm_worst, "random"), (arm_best, arm_worst)])
    summary.update(source=f"{best} | {worst}", target=target)
    return write_arms_report(workdir, summary, f"MI-ranked sources -> {target}", log=log)


def _write_ranking_report(workdir: Path, result: dict, ranking_text: str, log) -> None:
    """source_ranking.json and source_ranking.md (the ranking, the finals and whether it predicted the gain)."""
    (workdir / "source_ranking.json").write_text(json.dumps(result, indent=1))
    g, best_vs_worst = result["gain_over_random"], result["best_minus_worst"]
    best, worst, target = result["best"], result["worst"], result["target"]
    text = (f"# MI-ranked KPTransfer sources for {target}\n\n{ranking_text}\n\n"
            f"random initialisation: {result['random_final_mean']:.2f}; transfer from {best} (best-ranked): "
            f"{result['transfer_final_mean']['best']:.2f} ({g['best']:+.2f}); from {worst} (worst-ranked): "
            f"{result['transfer_final_mean']['worst']:.2f} ({g['worst']:+.2f}); best - worst "
            f"{best_vs_worst['mean']:+.2f} ± {best_vs_worst['std']:.2f}, won in {best_vs_worst['wins']} of "
            f"{len(best_vs_worst['seeds'])} seeds. The ranking "
            f"{'predicted' if result['ranking_predicted_the_gain'] else 'did NOT predict'} which source gains more.\n"
            f"\n{(workdir / 'results.md').read_text()}")
    (workdir / "source_ranking.md").write_text(text)
    log(text)


def _step_name(joints: str, data_dir: str, data_dirs: list[str]) -> str:
    """A step's joints, qualified by its records' layout when the chain crosses data sets (`mpii16:all`)."""
    from kpt_tf.data.records import records_subset

    if len(set(data_dirs)) == 1:
        return joints
    return records_subset(joints, data_dir).qualified_name


def step_title(step: dict) -> str:
    return f"{step['source']} -> {step['target']}"


def write_overall_report(workdir: Path, overall: dict) -> None:
    from kpt_tf.experiments.report import markdown_table

    (workdir / "results.json").write_text(json.dumps(overall, indent=1))
    source = overall["source"]
    chain = " -> ".join([source["joints"]] + [s["target"] for s in overall["steps"]])
    parts = [f"# KPTransfer: {chain}", "", f"Source {source['joints']}: best validation mean {source['metric']} "
             f"{source['best_val_pckh_mean']:.2f}", ""]
    for s in overall["steps"]:
        parts += [markdown_table(s, step_title(s)), f"![convergence]({Path(s['plot_png']).relative_to(workdir)})",
                  ""]
    (workdir / "results.md").write_text("\n".join(parts))


def main(argv):
    del argv
    config, workdir, quick = required_flags()
    from kpt_tf import ownership

    with ownership.owned(workdir, "kpt_tf.experiments.kptransfer"):   # one experiment per directory
        if config.experiment.get("candidates"):
            run_source_ranking(config, workdir, quick=quick)
            return 0
        overall = run_experiment(config, workdir, quick=quick)
    print((Path(workdir) / "results.md").read_text())
    return 0 if overall else 1


if __name__ == "__main__":
    define_flags("Experiment config (configs/kptransfer_*.py).", "Where every run, the results and the plots go.")
    from kpt_tf import cli

    cli.run(main, "kpt_tf.experiments.kptransfer")

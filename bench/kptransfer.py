r"""Convergence benchmark of KPTransfer on the embedded data set: epochs and wall time for transfer and frozen
extraction to reach random initialisation's final target PCKh, in one run.

    .venv/bin/python bench/kptransfer.py [--workdir runs/bench_kptransfer] [--epochs 8] [--seeds 0,1,2]
    .venv/bin/python bench/kptransfer.py --results runs/demo/kptransfer/results.json   # table of a finished run
    .venv/bin/python bench/kptransfer.py --steps upper,lower --candidates wrists+elbows,thorax+neck+shoulders \
        --workdir runs/bench_ranked      # MI meets KPTransfer: transfer from the best- and worst-ranked candidate
    .venv/bin/python bench/kptransfer.py --steps all,all --layouts mpii16,coco17 --workdir runs/bench_mpii2coco
                                         # across data sets: MPII's 16 joints -> COCO's 17, heads by joint name
    .venv/bin/python bench/kptransfer.py ... --carry docs/results/kptransfer_mpii_to_coco/carried
                                         # continue an experiment that outlasts one machine session (below)

Runs (or reuses, when the workdir already holds finished runs) `kpt_tf.experiments.kptransfer` with the
benchmark setting (configs/embedded_bench.py: the demo recipe on a 1-stack network, 36 epochs x 120 batches of
16, 12,000 generated people) on source `upper` -> target `lower`, and prints a table per target step.

`--carry DIR` splits one experiment over machine sessions whose scratch space does not survive: the finished runs
recorded in DIR are put into the workdir before anything trains (the experiment skips a finished run: only its
summary is read), and every run finished when the command ends, or is stopped, is recorded there (its summary,
config and metrics; the network too for a source the next step starts from, 1.6 MB for the bench network). With
`--carry_only`, nothing trains: the workdir's finished runs are recorded and the command exits. The embedded
people are generated again from the same seed, so a continued experiment trains on the same data.
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from kpt_tf.experiments.kptransfer import feeds_a_later_step
from kpt_tf.experiments.report import metric_of
from kpt_tf.experiments.runs import carry_finished_runs

flags.DEFINE_string("workdir", "runs/bench_kptransfer", "Experiment directory (reused if finished).")
flags.DEFINE_string("results", None, "Only print the table of an existing results.json.")
flags.DEFINE_string("steps", "upper,lower", "Source and target subsets (';'-free comma list of named subsets).")
flags.DEFINE_integer("epochs", None, "Epochs of the source and of every target arm (default: the config's).")
flags.DEFINE_integer("steps_per_epoch", None, "Batches per epoch (default: the config's; 0 = one pass over the "
                     "training people).")
flags.DEFINE_string("seeds", "0,1,2", "Seeds of the target arms.")
flags.DEFINE_list("candidates", [], "Candidate source subsets ('+' joins groups): rank them by the MI of joint "
                  "locations for the target (the last of --steps), transfer from the best- and the worst-ranked "
                  "and report whether the ranking predicted the larger gain (random initialisation trained once).")
flags.DEFINE_list("layouts", [], "Per step of --steps: the layout of the embedded people it trains on (mpii16, "
                  "coco17; one generation converted in both), e.g. mpii16,coco17 with --steps all,all: KPTransfer "
                  "from MPII's joints to COCO's by joint name. Empty: every step on mpii16.")
flags.DEFINE_integer("num_train", None, "Generated training people (default: configs/embedded_bench.NUM_TRAIN).")
flags.DEFINE_integer("num_val", None, "Generated validation people (default: configs/embedded_bench.NUM_VAL).")
flags.DEFINE_string("carry", None, "Directory of finished runs carried between sessions: put into the workdir "
                    "first, and every finished run recorded there when the command ends (docstring).")
flags.DEFINE_bool("carry_only", False, "With --carry: record the workdir's finished runs there and exit.")
FLAGS = flags.FLAGS


def table(results: dict) -> str:
    lines = []
    for step in results["steps"]:
        random = step["arms"]["random"]
        w = max(10, 2 + max(map(len, step["arms"])))
        lines += [f"\n{step['source']} -> {step['target']}  (seeds {step['seeds']}; random's final mean "
                  f"{metric_of(step)} {random['final_mean']:.2f})",
                  f"{'arm':<{w}}{'final mean':>12}{'± std':>8}{'vs random':>11}{'epoch to 95%':>14}{'s to 95%':>10}"
                  f"{'epoch to 100%':>15}{'s to 100%':>11}{'train s':>9}{'last 1/5':>10}"]
        for arm, e in step["arms"].items():
            def fmt(v, spec):
                return "never" if v is None else format(v, spec)
            gain = e["final_mean"] - random["final_mean"]
            lines.append(
                f"{arm:<{w}}{e['final_mean']:>12.2f}{e['final_std']:>8.2f}{gain:>+11.2f}"
                f"{fmt(e.get('epoch_to_95pct_baseline_final'), 'd'):>14}"
                f"{fmt(e.get('seconds_to_95pct_baseline_final'), '.0f'):>10}"
                f"{fmt(e.get('epoch_to_100pct_baseline_final'), 'd'):>15}"
                f"{fmt(e.get('seconds_to_100pct_baseline_final'), '.0f'):>11}{e['seconds']:>9.0f}"
                f"{fmt(e.get('last_fifth_gain'), '+.2f'):>10}")
        lines.append(f"plot: {step['plot_png']}")
    return "\n".join(lines)


def main(argv):
    del argv
    if FLAGS.carry:
        workdir, num_steps = Path(FLAGS.workdir), len(FLAGS.steps.split(","))
        with_network = lambda run: feeds_a_later_step(run, num_steps)  # noqa: E731
        if FLAGS.carry_only:
            recorded = carry_finished_runs(workdir, Path(FLAGS.carry), with_network)
            print(f"--carry: {len(recorded)} finished run(s) recorded in {FLAGS.carry}: {', '.join(recorded) or '-'}")
            return
        taken = carry_finished_runs(Path(FLAGS.carry), workdir, with_network) if Path(FLAGS.carry).is_dir() else []
        print(f"--carry: {len(taken)} finished run(s) taken from {FLAGS.carry}: {', '.join(taken) or '-'}")
        try:
            return run()
        finally:                                 # also on Ctrl-C / SIGTERM: what finished is kept for next time
            recorded = carry_finished_runs(workdir, Path(FLAGS.carry), with_network)
            print(f"--carry: {len(recorded)} finished run(s) recorded in {FLAGS.carry}")
    return run()


def run():
    if FLAGS.results:
        print(table(json.loads(Path(FLAGS.results).read_text())))
        return
    from configs.embedded_bench import NUM_TRAIN, NUM_VAL, get_config
    from data_prep.embedded import ensure_embedded_dataset
    from kpt_tf.experiments.kptransfer import experiment_from_training_config, run_experiment, run_source_ranking

    config = get_config()
    if FLAGS.steps_per_epoch is not None:
        config.train.steps_per_epoch = FLAGS.steps_per_epoch
    epochs = int(config.train.epochs) if FLAGS.epochs is None else FLAGS.epochs
    num_train = NUM_TRAIN if FLAGS.num_train is None else FLAGS.num_train
    num_val = NUM_VAL if FLAGS.num_val is None else FLAGS.num_val
    workdir = Path(FLAGS.workdir)
    steps = FLAGS.steps.split(",")
    if FLAGS.layouts and len(FLAGS.layouts) != len(steps):
        raise ValueError(f"--layouts names {len(FLAGS.layouts)} layouts for {len(steps)} steps")
    records = {layout: str(ensure_embedded_dataset(workdir / "data", num_train, num_val, seed=0,
                                                   input_size=int(config.model.input_size), layout=layout))
               for layout in dict.fromkeys(FLAGS.layouts or ["mpii16"])}
    config.data.dir = records[(FLAGS.layouts or ["mpii16"])[0]]
    data_dirs = [records[layout] for layout in FLAGS.layouts]
    config = experiment_from_training_config(config, steps, FLAGS.seeds.split(","), epochs, data_dirs)
    log = lambda *a: print(*a, flush=True)  # noqa: E731
    if FLAGS.candidates:
        with config.unlocked():
            config.experiment.candidates = tuple(FLAGS.candidates)
        ranked = run_source_ranking(config, workdir, log=log)
        # The one comparison (random, from the best-, from the worst-ranked source) the ranking run wrote.
        print(f"\nMI-ranked sources for {ranked['target']}: best-ranked {ranked['best']}, "
              f"worst-ranked {ranked['worst']}")
        print(table({"steps": [json.loads(Path(ranked["comparison"]).read_text())]}))
        return
    results = run_experiment(config, workdir, log=log)
    print(f"\nKPTransfer convergence on the embedded data set ({num_train} train / {num_val} val people, "
          f"{int(config.model.num_stacks)}-stack network, {epochs} epochs of "
          f"{int(config.train.steps_per_epoch) or 'all'} batches per arm)")
    print(table(results))


if __name__ == "__main__":
    from kpt_tf import cli

    cli.run(main, "bench.kptransfer")

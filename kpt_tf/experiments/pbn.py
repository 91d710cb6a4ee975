r"""Part-Based Branching Network against a plain hourglass of the same size: `python -m kpt_tf.experiments.pbn
--config configs/pbn_embedded.py --workdir W [--quick]`.

The experiment first groups the joints of its own training data (`kpt_tf.grouping`: the MI grouping and the
body-structure grouping, `experiment.num_groups` groups each, into W/groups_mi and W/groups_body), then trains,
with the same data, schedule, epochs and seeds:

    pbn_mi     the config's PBN with the MI groups
    pbn_body   the same PBN with the body groups
    hourglass  a plain stacked hourglass with trunk_stacks + branch_stacks stacks, its width solved so that its
               trainable parameter count is within `experiment.param_tolerance` of the PBN's

and reports per-joint and mean PCKh@0.5 (mean ± std over seeds), PCKh of visible and of occluded joints (the
paper's headline), the paired differences, and a plot (results.json, results.md, convergence.png in W).
Finished runs are reused on a rerun.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

from absl import app

from kpt_tf.experiments.runs import define_flags, required_flags, train_once

ARMS = ("pbn_mi", "pbn_body", "hourglass")
COMPARISONS = (("pbn_mi", "hourglass"), ("pbn_body", "hourglass"), ("pbn_mi", "pbn_body"))


def apply_quick(config):
    c = copy.deepcopy(config)
    q = c.quick
    c.model.channels, c.model.branch_channels = int(q.channels), int(q.branch_channels)
    c.model.depth, c.model.input_size = int(q.depth), int(q.input_size)
    c.train.batch_size, c.train.steps_per_epoch, c.train.epochs = int(q.batch_size), int(q.steps_per_epoch), int(
        q.epochs)
    c.experiment.seeds, c.experiment.num_groups = tuple(q.seeds), int(q.num_groups)
    c.train.skeleton_images = 0
    return c


def trainable_params(config) -> int:
    import keras

    from kpt_tf.data.records import config_subset
    from kpt_tf.models import build_net, resolve_config
    from kpt_tf.models.weights import trainable_parameter_count

    keras.backend.clear_session()
    return trainable_parameter_count(build_net(resolve_config(copy.deepcopy(config)), config_subset(config)))


def matched_hourglass(pbn_config, target_params: int, tolerance: float):
    """A plain hourglass config with the PBN's stack count, stem, depth and schedule, and the even width whose
    parameter count is closest to `target_params`; refuses when even the closest is outside `tolerance`."""
    from kpt_tf.models import model_section

    c = copy.deepcopy(pbn_config)
    c.model = model_section("hourglass", like=c.model,
                            num_stacks=int(c.model.trunk_stacks) + int(c.model.branch_stacks))
    m = c.model

    counts: dict[int, int] = {}

    def params(width):
        if width not in counts:
            m.channels = width
            counts[width] = trainable_params(c)     # builds the network: about a second even for a tiny one
        return counts[width]

    def even(width):
        return max(2, 2 * round(width / 2))

    # The count grows about with the square of the width: two guesses from the PBN's own width land within an
    # even step or two of the target, then even steps bracket it (3-5 networks built, where a search from width 2
    # built 11). The counts grow with the width, so the bracket's closer end is the closest even width overall.
    width = even(int(pbn_config.model.channels))
    for _ in range(2):
        width = even(width * math.sqrt(target_params / params(width)))
    if params(width) < target_params:
        while params(width + 2) < target_params:
            width += 2
        lo, hi = width, width + 2
    else:
        while width > 2 and params(width - 2) >= target_params:
            width -= 2
        lo, hi = max(2, width - 2), width
    width = min((lo, hi), key=lambda w: abs(params(w) - target_params))
    count = params(width)
    if abs(count - target_params) > tolerance * target_params:
        raise ValueError(f"no hourglass width gives {target_params} parameters within {tolerance:.0%} "
                         f"(closest: {width} channels, {count})")
    m.channels = width
    return c, count


def make_groupings(config, workdir: Path, log=print) -> dict:
    """groups.json of the MI and the body grouping of the training data (reused when already written)."""
    from kpt_tf.grouping import grouping

    out = {}
    mi = None
    for method in ("mi", "body"):
        directory = workdir / f"groups_{method}"
        path = directory / grouping.GROUPS_JSON
        if not path.is_file():
            if mi is None:
                mi = grouping.estimate(config.data.dir, config.joints, int(config.experiment.grouping_bins), log=log)
            groups = grouping.make_groups(mi, int(config.experiment.num_groups), method, config.joints)
            grouping.write_outputs(directory, mi, groups)
        out[method] = path
        groups = json.loads(path.read_text())
        log(f"[pbn] {method} groups: " + "; ".join(f"{n} ({', '.join(g)})"
                                                    for n, g in zip(groups["names"], groups["groups"])))
    return out


def run_experiment(config, workdir, quick: bool = False, log=print, verbose: int = 1) -> dict:
    from kpt_tf.experiments.report import summarise_arms, write_arms_report
    from kpt_tf.training import loop

    if quick:
        config = apply_quick(config)
    loop.require_data_dir(config)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    exp = config.experiment
    groups = make_groupings(config, workdir, log)
    arm_configs = {}
    for method in ("mi", "body"):
        c = copy.deepcopy(config)
        c.model.groups_file = str(groups[method])
        arm_configs[f"pbn_{method}"] = c
    pbn_params = trainable_params(arm_configs["pbn_mi"])
    body_params = trainable_params(arm_configs["pbn_body"])
    hourglass, hourglass_params = matched_hourglass(config, pbn_params, float(exp.param_tolerance))
    arm_configs["hourglass"] = hourglass
    sizes = {"pbn_mi": pbn_params, "pbn_body": body_params, "hourglass": hourglass_params}
    log("[pbn] trainable parameters: " + ", ".join(f"{a} {n:,}" for a, n in sizes.items())
        + f" (hourglass: {hourglass.model.num_stacks} x {hourglass.model.channels})")

    arms = [a for a in ARMS if a in tuple(exp.arms)]
    runs: dict[str, dict[int, dict]] = {a: {} for a in arms}
    for seed in (int(s) for s in exp.seeds):
        for arm in arms:
            c = copy.deepcopy(arm_configs[arm])
            c.train.seed = seed
            log(f"[pbn] arm {arm}, seed {seed}")
            runs[arm][seed] = train_once(c, workdir / arm / f"seed{seed}", verbose)
    from kpt_tf.data.records import config_subset

    summary = summarise_arms(runs, metric=config_subset(config).layout.pck_label,
                             baseline="hourglass" if "hourglass" in arms else None,
                             comparisons=[p for p in COMPARISONS if p[0] in arms and p[1] in arms])
    summary.update(parameters=sizes, hourglass_shape=[int(hourglass.model.num_stacks), int(hourglass.model.channels)],
                   groups={m: json.loads(Path(p).read_text()) for m, p in groups.items()},
                   config=json.loads(config.to_json_best_effort()))
    title = (f"PBN ({config.model.trunk_stacks} trunk + {config.model.branch_stacks} branch stacks, "
             f"{exp.num_groups} groups) vs hourglass {hourglass.model.num_stacks} x {hourglass.model.channels}")
    summary = write_arms_report(workdir, summary, title, log=log)
    with open(workdir / "results.md", "a") as f:
        f.write("\nTrainable parameters: " + ", ".join(f"{a} {n:,}" for a, n in sizes.items()) + "\n\n")
        for method, g in summary["groups"].items():
            f.write(f"{method} groups: " + "; ".join(f"{n} ({', '.join(j)})" for n, j in zip(g["names"], g["groups"]))
                    + "\n\n")
        f.write("![convergence](convergence.png) ![MI](groups_mi/mi.png)\n")
    return summary


def main(argv):
    del argv
    config, workdir, quick = required_flags()
    if "experiment" not in config or str(config.model.name) != "pbn":
        raise app.UsageError("the config needs model.name = pbn and an `experiment` section (configs/pbn_embedded.py)")
    from kpt_tf import ownership

    with ownership.owned(workdir, "kpt_tf.experiments.pbn"):   # one experiment per directory
        run_experiment(config, workdir, quick=quick)
    print((Path(workdir) / "results.md").read_text())
    return 0


if __name__ == "__main__":
    define_flags("PBN experiment config (configs/pbn_*.py).",
                 "Where the groupings, every arm, the results and the plot go.")
    from kpt_tf import cli

    cli.run(main, "kpt_tf.experiments.pbn")

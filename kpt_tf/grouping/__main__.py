r"""Joint groups from the mutual information of joint locations, and KPTransfer sources ranked by it.

    python -m kpt_tf.grouping --data DATA --groups G [--method mi|body] [--out DIR]
    python -m kpt_tf.grouping --data DATA --recommend_source_for lower --candidates upper,arms,torso_head

DATA: a TFRecord directory (train split), an annotation json (`.json` / `.json.gz`, MPII schema) or the
release `.mat`. Writes `mi.json`, `groups.json` and `mi.png` (the MI heat map, joints ordered by group, groups
outlined) under --out, and prints the matrix and the groups.
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags


def define_flags():
    """The CLI flags; defined only when run as a program, so that importing this module (tests, other tools)
    never collides with another module's flags of the same name (absl flags are global)."""
    flags.DEFINE_string("data", None, "TFRecord directory, annotation .json/.json.gz or the release .mat.")
    flags.DEFINE_integer("groups", 0, "Number of joint groups.")
    flags.DEFINE_enum("method", "mi", ["mi", "body"], "mi: cluster the MI; body: the body-structure grouping.")
    flags.DEFINE_string("out", None, "Directory for mi.json, groups.json and mi.png.")
    flags.DEFINE_string("joints", "all", "Joint subset to group (`coco17:all` for another layout than MPII's; "
                        "--recommend_source_for reads its subsets against this subset's layout).")
    flags.DEFINE_integer("bins", 6, "Equal-frequency bins per axis of a joint's location.")
    flags.DEFINE_integer("bootstrap", 30, "Bootstrap resamples for the MI's uncertainty.")
    flags.DEFINE_integer("seed", 0, "Seed of the bootstrap and the shuffles.")
    flags.DEFINE_string("recommend_source_for", None, "Rank --candidates as KPTransfer sources for this subset.")
    flags.DEFINE_list("candidates", [], "Candidate source subsets (named subsets or + expressions: arms, "
                      "wrists+elbows).")


FLAGS = flags.FLAGS


def format_matrix(mi, layout=None) -> str:
    """The MI matrix as text, joints labelled by their layout's short names (MPII's `rank`; the canonical names
    in a layout without short names, in wider columns). Default layout: MPII's."""
    from kpt_tf.joints import MPII16

    layout = layout or MPII16
    labels = [layout.short_names[layout.index(j)] if layout.short_names else j for j in mi.joints]
    width = max(6, 1 + max(map(len, labels)))
    lines = ["MI (bits; diagonal: entropy) of joint locations, " f"{mi.people} people, {mi.bins}x{mi.bins} bins",
             " " * width + "".join(f"{s:>{width}}" for s in labels)]
    for s, row in zip(labels, mi.mi):
        lines.append(f"{s:>{width}}" + "".join(f"{v:{width}.2f}" for v in row))
    return "\n".join(lines)


def main(argv):
    del argv
    from kpt_tf.grouping import grouping
    from kpt_tf.joints import JointSubset

    if not FLAGS.data:
        raise app.UsageError("--data is required")
    layout = JointSubset.parse(FLAGS.joints).layout   # `coco17:...` names another layout than MPII's
    if FLAGS.recommend_source_for:
        if not FLAGS.candidates:
            raise app.UsageError("--recommend_source_for needs --candidates a,b,c")
        everyone = JointSubset.parse("all", layout)
        mi = grouping.estimate(FLAGS.data, everyone, FLAGS.bins, FLAGS.bootstrap, FLAGS.seed, log=print)
        ranking = grouping.rank_sources(mi, FLAGS.recommend_source_for, list(FLAGS.candidates), layout)
        print(grouping.format_ranking(ranking))
        if FLAGS.out:
            Path(FLAGS.out).mkdir(parents=True, exist_ok=True)
            (Path(FLAGS.out) / "source_ranking.json").write_text(json.dumps(ranking, indent=1))
        return 0
    if FLAGS.groups < 1:
        raise app.UsageError("--groups G (>= 1) is required")
    mi = grouping.estimate(FLAGS.data, FLAGS.joints, FLAGS.bins, FLAGS.bootstrap, FLAGS.seed, log=print)
    groups = grouping.make_groups(mi, FLAGS.groups, FLAGS.method, FLAGS.joints)
    print(format_matrix(mi, layout))
    print(f"\n{FLAGS.method} groups ({FLAGS.groups}):")
    for name, joints in zip(groups["names"], groups["groups"]):
        print(f"  {name}: {', '.join(joints)}")
    if FLAGS.out:
        paths = grouping.write_outputs(Path(FLAGS.out), mi, groups)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    define_flags()
    from kpt_tf import cli

    cli.run(main, "kpt_tf.grouping")

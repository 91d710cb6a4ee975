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

flags.DEFINE_string("data", None, "TFRecord directory, annotation .json/.json.gz or the release .mat.")
flags.DEFINE_integer("groups", 0, "Number of joint groups.")
flags.DEFINE_enum("method", "mi", ["mi", "body"], "mi: cluster the MI; body: the body-structure grouping.")
flags.DEFINE_string("out", None, "Directory for mi.json, groups.json and mi.png.")
flags.DEFINE_string("joints", "all", "Joint subset to group.")
flags.DEFINE_integer("bins", 6, "Equal-frequency bins per axis of a joint's location.")
flags.DEFINE_integer("bootstrap", 30, "Bootstrap resamples for the MI's uncertainty.")
flags.DEFINE_integer("seed", 0, "Seed of the bootstrap and the shuffles.")
flags.DEFINE_string("recommend_source_for", None, "Rank --candidates as KPTransfer sources for this subset.")
flags.DEFINE_list("candidates", [], "Candidate source subsets (named subsets or + expressions: arms, wrists+elbows).")
FLAGS = flags.FLAGS


def format_matrix(mi) -> str:
    from kpt_tf.joints import JOINT_NAMES, MPII_SHORT_NAMES

    short = [MPII_SHORT_NAMES[JOINT_NAMES.index(j)] for j in mi.joints]
    lines = ["MI (bits; diagonal: entropy) of joint locations, " f"{mi.people} people, {mi.bins}x{mi.bins} bins",
             "      " + "".join(f"{s:>6}" for s in short)]
    for s, row in zip(short, mi.mi):
        lines.append(f"{s:>6}" + "".join(f"{v:6.2f}" for v in row))
    return "\n".join(lines)


def main(argv):
    del argv
    from kpt_tf.grouping import grouping

    if not FLAGS.data:
        raise app.UsageError("--data is required")
    if FLAGS.recommend_source_for:
        if not FLAGS.candidates:
            raise app.UsageError("--recommend_source_for needs --candidates a,b,c")
        mi = grouping.estimate(FLAGS.data, "all", FLAGS.bins, FLAGS.bootstrap, FLAGS.seed, log=print)
        ranking = grouping.rank_sources(mi, FLAGS.recommend_source_for,
                                        list(FLAGS.candidates))
        print(grouping.format_ranking(ranking))
        if FLAGS.out:
            Path(FLAGS.out).mkdir(parents=True, exist_ok=True)
            (Path(FLAGS.out) / "source_ranking.json").write_text(json.dumps(ranking, indent=1))
        return 0
    if FLAGS.groups < 1:
        raise app.UsageError("--groups G (>= 1) is required")
    mi = grouping.estimate(FLAGS.data, FLAGS.joints, FLAGS.bins, FLAGS.bootstrap, FLAGS.seed, log=print)
    groups = grouping.make_groups(mi, FLAGS.groups, FLAGS.method, FLAGS.joints)
    print(format_matrix(mi))
    print(f"\n{FLAGS.method} groups ({FLAGS.groups}):")
    for name, joints in zip(groups["names"], groups["groups"]):
        print(f"  {name}: {', '.join(joints)}")
    if FLAGS.out:
        paths = grouping.write_outputs(Path(FLAGS.out), mi, groups)
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    from kpt_tf import cli

    cli.run(main, "kpt_tf.grouping")

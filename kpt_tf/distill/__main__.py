r"""`python -m kpt_tf.distill --config configs/fpd_X.py --workdir W [--dry_run]`: an alias of `python -m kpt_tf.train`
with `train.trainer = "distill"` (Fast Pose Distillation: the student trains on ground truth and on a frozen teacher's
heatmaps; keys under `config.distill`). Everything else, `--dry_run` included, is `kpt_tf.train`'s.
"""

from __future__ import annotations

import functools

if __name__ == "__main__":
    from kpt_tf import cli, train

    train.define_flags()
    cli.run(functools.partial(train.main, trainer="distill"), "kpt_tf.distill")

"""Fast Pose Distillation (Zhang, Zhu, Ye: "Fast Human Pose Estimation", CVPR 2019) as a trainer plugged into the
trainer seam: a small student trained on ground truth and on a frozen teacher's final heatmaps, both networks
in the same compiled step under `model.fit` (`train.trainer = "distill"`, keys under `config.distill`).

`trainer.DistillTrainer` registers itself as "distill"; `kpt_tf.training.trainer.TRAINERS` imports it when a config
names it. The loss is `config.distill.loss` (`losses.DISTILL_LOSSES`; FPD's `fpd` by default).
"""

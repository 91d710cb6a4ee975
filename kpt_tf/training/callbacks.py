"""Training callbacks: validation PCKh every epoch (into the epoch logs, TensorBoard and the CSV)."""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from kpt_tf.inference import net_heatmaps_fn, predict_dataset
from kpt_tf.metrics import pckh
from kpt_tf.training.history import EpochScores
from kpt_tf.visualize import draw_skeleton


class ValidationPCKh(keras.callbacks.Callback):
    """Scores the network on the validation split after every epoch with the project's one metric.

    Adds `EpochScores.logs()` (val_pckh_mean, val_pckh01_mean at a true 0.10, val_pckh_<joint>) and
    `learning_rate` to the epoch logs (so CSVLogger, ModelCheckpoint and TensorBoard see them, which is why
    it must come first in the callback list), keeps `history` (a list of EpochScores), and writes predicted
    skeletons on a few validation crops to TensorBoard.
    """

    def __init__(self, net, dataset, codec, subset, flip_test: bool, max_people: int = 0, log_dir=None,
                 skeleton_images: int = 4):
        super().__init__()
        self.net, self.dataset, self.codec, self.subset = net, dataset, codec, subset
        self.flip_test, self.max_people, self.skeleton_images = flip_test, max_people, skeleton_images
        self._writer = tf.summary.create_file_writer(f"{log_dir}/validation_images") if log_dir else None
        self.best = None
        self._predict = None
        self._started = time.time()
        self.last_mean = None
        self.history: list[EpochScores] = []

    def evaluate(self):
        """(Predictions, score_predictions report) of the current network on the validation split."""
        if self._predict is None:
            self._predict = net_heatmaps_fn(self.net, self.subset, self.flip_test)
        preds = predict_dataset(self._predict, self.dataset, self.codec, keep_images=self.skeleton_images,
                                max_people=self.max_people)
        return preds, pckh.score_predictions(preds, self.subset)

    def on_train_begin(self, logs=None):
        self._started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        preds, report = self.evaluate()
        scores = EpochScores(epoch=epoch + 1, seconds=round(time.time() - self._started, 2), mean=report["mean"],
                             mean_01=report["mean@0.1"], per_joint=dict(report["per_joint"]),
                             per_joint_01=dict(report["per_joint@0.1"]))
        logs.update(scores.logs())
        lr = self.model.optimizer.learning_rate
        logs["learning_rate"] = float(np.asarray(lr.numpy() if hasattr(lr, "numpy") else lr))
        self.last_mean = scores.mean
        self.best = scores.mean if self.best is None else max(self.best, scores.mean)
        self.history.append(scores)
        if self._writer is not None and preds.images:
            drawn = [draw_skeleton(img, j, self.subset) for img, j in zip(preds.images, preds.input_joints)]
            with self._writer.as_default():
                tf.summary.image("predicted_skeletons", np.stack(drawn), step=epoch, max_outputs=len(drawn))
            self._writer.flush()

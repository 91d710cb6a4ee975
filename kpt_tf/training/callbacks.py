"""Training callbacks: validation PCKh every epoch (into the epoch logs, TensorBoard and the CSV), progress."""

from __future__ import annotations

import sys
import time

import keras
import numpy as np
import tensorflow as tf

from kpt_tf.cli import RunStopped
from kpt_tf.inference import net_heatmaps_fn, predict_dataset
from kpt_tf.layouts import PCK_LABELS, strict_pck_label
from kpt_tf.metrics import pckh
from kpt_tf.training.history import MEAN_01_LOG_KEY, MEAN_LOG_KEY, EpochScores
from kpt_tf.visualize import draw_skeleton


class ValidationPCKh(keras.callbacks.Callback):
    """Scores the network on the validation split after every epoch with the project's one metric.

    Adds `EpochScores.logs()` (val_pckh_mean, val_pckh01_mean at a true 0.10, val_pckh_<joint>) and
    `learning_rate` to the epoch logs (so CSVLogger, resume.RunCheckpoints and TensorBoard see them, which is
    why it must come first in the callback list), keeps `history` (a list of EpochScores), and writes predicted
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
        scores = EpochScores.from_report(epoch + 1, round(time.time() - self._started, 2), report)
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


class Progress(keras.callbacks.Callback):
    """Shows movement inside every epoch without flooding logs: on a terminal one line rewritten about twice a
    second, elsewhere (CI, files) one line every `log_interval` seconds; and one summary line per epoch with
    the losses, the validation figure and the estimated time left. Must come after ValidationPCKh. `metric`: the
    figure's name in the data's layout (`Layout.pck_label`: PCKh@0.5 on MPII, the person-box PCK on COCO); its
    stricter @0.1 figure is shown where one is quoted (`layouts.strict_pck_label`: MPII's only)."""

    def __init__(self, epochs: int, steps_per_epoch: int, stream=None, log_interval: float = 10.0,
                 metric: str = PCK_LABELS["head_box"]):
        super().__init__()
        self.epochs, self.steps = int(epochs), int(steps_per_epoch)
        self.metric = metric
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = 0.5 if self.tty else float(log_interval)
        self._train_started = self._epoch_started = self._last = time.time()
        self._epoch = 0
        self._epochs_done = 0

    def _write(self, text: str, final: bool) -> None:
        if self.tty:
            self.stream.write("\r" + text.ljust(110) + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def on_train_begin(self, logs=None):
        self._train_started = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_started = self._last = time.time()

    def on_train_batch_end(self, batch, logs=None):
        now = time.time()
        if now - self._last < self.interval:
            return
        self._last = now
        done = batch + 1
        rate = done / max(now - self._epoch_started, 1e-9)
        loss = float(np.asarray((logs or {}).get("loss", float("nan"))))
        self._write(f"epoch {self._epoch + 1}/{self.epochs}  step {done}/{self.steps}  loss {loss:.4g}  "
                    f"{rate:.1f} steps/s  epoch ends in {(self.steps - done) / rate:.0f} s", final=False)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        now = time.time()
        self._epochs_done += 1
        per_epoch = (now - self._train_started) / self._epochs_done
        left = per_epoch * (self.epochs - epoch - 1)
        pckh_text = ""
        if MEAN_LOG_KEY in logs:
            pckh_text = f"  val {self.metric} {float(logs[MEAN_LOG_KEY]):.2f}"
            if strict_pck_label(self.metric):
                pckh_text += f"  @0.1 {float(logs[MEAN_01_LOG_KEY]):.2f}"
        loss = float(np.asarray(logs.get("loss", float("nan"))))
        self._write(f"epoch {epoch + 1}/{self.epochs}  {now - self._epoch_started:.0f} s  loss {loss:.4g}"
                    f"{pckh_text}  about {left:.0f} s left", final=True)


class TrainingDiverged(RunStopped):
    pass


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops the run at the first step whose loss (or any per-stack loss) is NaN or infinite, by raising
    `TrainingDiverged` naming the epoch and the step, before any epoch-end callback can save NaN weights.

    Keras' TerminateOnNaN only sets `stop_training`: the epoch still ends (its checkpoints are written from
    the diverged weights) and `fit` returns normally, so the program exits 0."""

    def __init__(self, steps_per_epoch: int):
        super().__init__()
        self.steps = int(steps_per_epoch)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for key, value in (logs or {}).items():
            if key.startswith("loss"):
                value = float(np.asarray(value))
                if not np.isfinite(value):
                    raise TrainingDiverged(
                        f"training diverged: {key} is {value} at epoch {self._epoch + 1}, step {batch + 1} of "
                        f"{self.steps} (global step {self._epoch * self.steps + batch + 1})")

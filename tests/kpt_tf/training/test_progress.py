"""Training progress (kpt_tf/training/callbacks.Progress): movement inside an epoch, compact off a terminal."""

from __future__ import annotations

import io

from kpt_tf.training.callbacks import Progress


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_progress_prints_inside_epochs_at_its_interval_and_a_line_per_epoch(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr("kpt_tf.training.callbacks.time.time", clock)
    stream = io.StringIO()
    progress = Progress(epochs=2, steps_per_epoch=100, stream=stream, log_interval=10.0)
    progress.on_train_begin()
    for epoch in range(2):
        progress.on_epoch_begin(epoch)
        for step in range(100):
            clock.now += 0.5  # 50 s an epoch: a line every 10 s
            progress.on_train_batch_end(step, {"loss": 0.01})
        progress.on_epoch_end(epoch, {"loss": 0.01, "val_pckh_mean": 42.0, "val_pckh01_mean": 7.0})
    lines = stream.getvalue().splitlines()
    inside = [line for line in lines if "step" in line]
    assert 8 <= len(inside) <= 10  # about every 10 s of a 2 x 50 s run, never every batch
    assert "epoch 1/2  step 20/100" in inside[0] and "epoch ends in" in inside[0]
    summaries = [line for line in lines if "val PCKh@0.5 42.00" in line]
    assert len(summaries) == 2 and "about 50 s left" in summaries[0] and "about 0 s left" in summaries[1]
    assert "\r" not in stream.getvalue()  # not a terminal: plain lines only


def test_the_epoch_line_names_the_layouts_figure():
    """On COCO records the figure is the person-box PCK, not PCKh (the loop passes `Layout.pck_label`)."""
    from kpt_tf.layouts import layout

    stream = io.StringIO()
    progress = Progress(epochs=1, steps_per_epoch=1, stream=stream, metric=layout("coco17").pck_label)
    progress.on_train_begin()
    progress.on_epoch_begin(0)
    progress.on_epoch_end(0, {"loss": 0.01, "val_pckh_mean": 42.0, "val_pckh01_mean": 7.0})
    line = stream.getvalue()
    assert "val PCK@0.05 of the person box 42.00" in line and "PCKh" not in line and "@0.1" not in line, line

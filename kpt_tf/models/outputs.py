"""The output contract of every pose network: a list of heatmaps [B, h, w, J], one per supervised stage,
the last one the final prediction. The one place that decides "which output is final".

A functional Keras model built with a single output returns a bare tensor rather than a one-element list;
these helpers hide that difference from the trainer, inference, export and distillation.
"""

from __future__ import annotations


def stage_outputs(outputs) -> list:
    """Every supervised stage's heatmaps, as a list (a one-stage network's bare tensor becomes [tensor])."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def final_heatmaps(outputs):
    """The final prediction: the last stage's heatmaps."""
    return stage_outputs(outputs)[-1]

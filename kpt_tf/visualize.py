"""Drawing predicted skeletons (TensorBoard validation images, the demo's PNG)."""

from __future__ import annotations

import cv2
import numpy as np

from kpt_tf.joints import FLIP_PAIRS, SKELETON, JointSubset

_LEFT = {b for _, b in FLIP_PAIRS}     # left-side joints (second of each pair)
_RIGHT = {a for a, _ in FLIP_PAIRS}


def _colour(i: int, j: int) -> tuple[int, int, int]:
    if i in _LEFT or j in _LEFT:
        return (60, 200, 60)    # left limbs green
    if i in _RIGHT or j in _RIGHT:
        return (230, 60, 60)    # right limbs red
    return (240, 200, 40)       # midline yellow


# Opacity of the joints and limbs drawn below `faint_below` (a low heatmap maximum: the network is unsure).
FAINT_OPACITY = 0.35


def draw_skeleton(image: np.ndarray, joints: np.ndarray, subset: JointSubset, scores=None,
                  min_score: float = 0.0, thickness: int | None = None, faint_below: float | None = None,
                  box=None) -> np.ndarray:
    """Copy of an RGB uint8 image with the subset's joints [J,2] (image pixels) and limbs drawn: left limbs green,
    right red, the midline yellow. Joints scoring <= `min_score` are left out; with `faint_below`, joints scoring
    below it (and limbs touching them) are drawn faint. `box` (x1, y1, x2, y2): the person box, drawn thin."""
    out = np.ascontiguousarray(image.copy())
    t = thickness or max(1, round(max(out.shape[:2]) / 150))
    local = {g: k for k, g in enumerate(subset.indices)}
    scores = None if scores is None else np.asarray(scores)
    ok = np.ones(len(subset), bool) if scores is None else scores > min_score
    faint = np.zeros(len(subset), bool) if scores is None or faint_below is None else scores < faint_below
    to_px = lambda p: (int(round(float(p[0]))), int(round(float(p[1]))))  # noqa: E731
    if box is not None:
        cv2.rectangle(out, to_px(box[:2]), to_px(box[2:]), (255, 255, 255), max(1, t // 2), cv2.LINE_AA)
    layers = [(np.ascontiguousarray(out.copy()), True), (out, False)] if faint.any() else [(out, False)]
    for canvas, faint_layer in layers:   # the faint strokes first, blended, then the confident ones on top
        for i, j in SKELETON:
            if i in local and j in local and ok[local[i]] and ok[local[j]] \
                    and (faint[local[i]] or faint[local[j]]) == faint_layer:
                cv2.line(canvas, to_px(joints[local[i]]), to_px(joints[local[j]]), _colour(i, j), t, cv2.LINE_AA)
        for g, k in local.items():
            if ok[k] and faint[k] == faint_layer:
                cv2.circle(canvas, to_px(joints[k]), t + 1, _colour(g, g), -1, cv2.LINE_AA)
        if faint_layer:
            cv2.addWeighted(canvas, FAINT_OPACITY, out, 1 - FAINT_OPACITY, 0, dst=out)
    return out

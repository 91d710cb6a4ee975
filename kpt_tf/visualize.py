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


def draw_skeleton(image: np.ndarray, joints: np.ndarray, subset: JointSubset, scores=None,
                  min_score: float = 0.0, thickness: int | None = None) -> np.ndarray:
    """Copy of an RGB uint8 image with the subset's joints [J,2] (image pixels) and limbs drawn."""
    out = np.ascontiguousarray(image.copy())
    t = thickness or max(1, round(max(out.shape[:2]) / 150))
    local = {g: k for k, g in enumerate(subset.indices)}
    ok = np.ones(len(subset), bool) if scores is None else np.asarray(scores) > min_score
    to_px = lambda p: (int(round(float(p[0]))), int(round(float(p[1]))))  # noqa: E731
    for i, j in SKELETON:
        if i in local and j in local and ok[local[i]] and ok[local[j]]:
            cv2.line(out, to_px(joints[local[i]]), to_px(joints[local[j]]), _colour(i, j), t, cv2.LINE_AA)
    for g, k in local.items():
        if ok[k]:
            cv2.circle(out, to_px(joints[k]), t + 1, _colour(g, g), -1, cv2.LINE_AA)
    return out

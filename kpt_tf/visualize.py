"""Drawing predicted skeletons (TensorBoard validation images, the demo's PNG) of any keypoint layout: the
skeleton and the joints' sides come from the subset's layout (kpt_tf/layouts)."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from kpt_tf.joints import JointSubset
from kpt_tf.layouts import KeypointLayout

LEFT_COLOUR = (60, 200, 60)       # left limbs green
RIGHT_COLOUR = (230, 60, 60)      # right limbs red
MIDLINE_COLOUR = (240, 200, 40)   # midline yellow


@functools.cache
def joint_sides(layout: KeypointLayout) -> tuple[frozenset[int], frozenset[int]]:
    """(left, right) joint indices of a layout: the flip-paired joints whose canonical name says their side
    (`left_*`, `right_*`; layouts name sides so, whatever order their pairs are written in: MPII right first, COCO
    left first). Unpaired joints are on the midline."""
    paired = [(index, layout.joints[index]) for pair in layout.flip_pair_indices for index in pair]
    return (frozenset(i for i, name in paired if name.startswith("left_")),
            frozenset(i for i, name in paired if name.startswith("right_")))


def _colour(layout: KeypointLayout, i: int, j: int) -> tuple[int, int, int]:
    left, right = joint_sides(layout)
    touches_left, touches_right = i in left or j in left, i in right or j in right
    if touches_left and touches_right:
        return MIDLINE_COLOUR   # an edge across the body (COCO's shoulders, hips) is on neither side
    if touches_left:
        return LEFT_COLOUR
    if touches_right:
        return RIGHT_COLOUR
    return MIDLINE_COLOUR


# Opacity of the joints and limbs drawn below `faint_below` (a low heatmap maximum: the network is unsure).
FAINT_OPACITY = 0.35


def draw_skeleton(image: np.ndarray, joints: np.ndarray, subset: JointSubset, scores=None,
                  min_score: float = 0.0, thickness: int | None = None, faint_below: float | None = None,
                  box=None) -> np.ndarray:
    """Copy of an RGB uint8 image with the subset's joints [J,2] (image pixels) and its layout's limbs drawn: left
    limbs green, right red, the midline yellow. Joints scoring <= `min_score` are left out; with `faint_below`,
    joints scoring below it (and limbs touching them) are drawn faint. `box` (x1, y1, x2, y2): the person box,
    drawn thin."""
    out = np.ascontiguousarray(image.copy())
    t = thickness or max(1, round(max(out.shape[:2]) / 150))
    layout = subset.layout
    local = {g: k for k, g in enumerate(subset.indices)}
    scores = None if scores is None else np.asarray(scores)
    ok = np.ones(len(subset), bool) if scores is None else scores > min_score
    faint = np.zeros(len(subset), bool) if scores is None or faint_below is None else scores < faint_below
    to_px = lambda p: (int(round(float(p[0]))), int(round(float(p[1]))))  # noqa: E731
    if box is not None:
        cv2.rectangle(out, to_px(box[:2]), to_px(box[2:]), (255, 255, 255), max(1, t // 2), cv2.LINE_AA)
    layers = [(np.ascontiguousarray(out.copy()), True), (out, False)] if faint.any() else [(out, False)]
    for canvas, faint_layer in layers:   # the faint strokes first, blended, then the confident ones on top
        for i, j in layout.skeleton_indices:
            if i in local and j in local and ok[local[i]] and ok[local[j]] \
                    and (faint[local[i]] or faint[local[j]]) == faint_layer:
                cv2.line(canvas, to_px(joints[local[i]]), to_px(joints[local[j]]), _colour(layout, i, j), t,
                         cv2.LINE_AA)
        for g, k in local.items():
            if ok[k] and faint[k] == faint_layer:
                cv2.circle(canvas, to_px(joints[k]), t + 1, _colour(layout, g, g), -1, cv2.LINE_AA)
        if faint_layer:
            cv2.addWeighted(canvas, FAINT_OPACITY, out, 1 - FAINT_OPACITY, 0, dst=out)
    return out

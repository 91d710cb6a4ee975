"""kpt_tf.visualize: skeletons drawn from the subset's keypoint layout (MPII's pixel for pixel as before layouts
existed, COCO's with its own edges and sides), and draw_skeleton's options (scores, faint joints, the box)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from kpt_tf.joints import JointSubset
from kpt_tf.visualize import LEFT_COLOUR, MIDLINE_COLOUR, RIGHT_COLOUR, draw_skeleton, joint_sides

# An MPII pose (image pixels, MPII order) on a 160 x 180 image, and one joint score per joint.
MPII_POSE = np.array([[40, 160], [45, 130], [55, 100], [85, 100], [95, 130], [100, 160], [70, 100], [70, 60],
                      [70, 45], [70, 25], [30, 90], [35, 70], [50, 60], [90, 60], [105, 70], [110, 90]], float)
MPII_SCORES = np.linspace(0.05, 0.95, 16)

# SHA-256 of MPII drawings on a seeded noise image, taken before the drawing read its layout (opencv 4.14.0; a
# different opencv may antialias differently, which this test would report as a change).
MPII_DRAWING_HASHES = {
    ("all", "plain"): "0ae7945fa764c1fb3277758cb2edf1c4090ccb6bdf771a3288886b9c8dde2893",
    ("all", "min_score"): "a07ac40db6a6cdfd9b0a0c7718fa9be5e86427eca606d54ecfb23344eb56c92b",
    ("all", "faint_and_box"): "e8c5dcbb0202fd0da01d268f39681a2a02b23ca24260664286335e88a5e10f5e",
    ("all", "thickness"): "e2506b3b3aa4beb96e1ae9bea9683a43094eac182e7bc86c8fe352db138c80a5",
    ("left", "faint_and_box"): "f67363937391974f590c24169609b0d5d3527bf5f1b1e2a41813f4538391baeb",
    ("lower", "min_score"): "e490d149ff33f03d2a3682db45608a4631f3e0c12bf70bb85cd335ab684b03cc",
}
OPTIONS = {"plain": {}, "min_score": {"min_score": 0.2}, "faint_and_box": {"faint_below": 0.5,
                                                                           "box": (10, 10, 150, 170)},
           "thickness": {"thickness": 3}}


def _noise_image():
    return np.random.default_rng(3).integers(0, 255, (180, 160, 3), dtype=np.uint8)


@pytest.mark.parametrize("spec,option", sorted(MPII_DRAWING_HASHES))
def test_mpii_drawings_are_pixel_identical_to_before_layouts(spec, option):
    subset = JointSubset.parse(spec)
    columns = list(subset.indices)
    kwargs = dict(OPTIONS[option])
    if option in ("min_score", "faint_and_box"):
        kwargs["scores"] = MPII_SCORES[columns]
    drawing = draw_skeleton(_noise_image(), MPII_POSE[columns], subset, **kwargs)
    assert hashlib.sha256(drawing.tobytes()).hexdigest() == MPII_DRAWING_HASHES[spec, option]


def _pixel_between(image, a, b, fraction=0.5):
    x, y = (1 - fraction) * np.asarray(a) + fraction * np.asarray(b)
    return tuple(int(v) for v in image[int(round(y)), int(round(x))])


def test_mpii_sides_and_midline_are_coloured_and_the_input_is_untouched():
    blank = np.zeros((180, 160, 3), np.uint8)
    subset = JointSubset.parse("all")
    drawing = draw_skeleton(blank, MPII_POSE, subset, thickness=3)
    assert not blank.any()                                             # drawn on a copy
    index = {name: k for k, name in enumerate(subset.names)}
    edge = lambda a, b: _pixel_between(drawing, MPII_POSE[index[a]], MPII_POSE[index[b]])  # noqa: E731
    assert edge("left_knee", "left_ankle") == LEFT_COLOUR
    assert edge("right_elbow", "right_wrist") == RIGHT_COLOUR
    assert edge("thorax", "upper_neck") == MIDLINE_COLOUR
    assert edge("right_wrist", "right_ankle") == (0, 0, 0)            # no such edge


def test_scores_leave_out_low_joints_and_draw_unsure_ones_faint_and_the_box_is_drawn():
    blank = np.zeros((180, 160, 3), np.uint8)
    subset = JointSubset.parse("right_elbow,right_wrist")
    pose = MPII_POSE[[11, 10]]
    left_out = draw_skeleton(blank, pose, subset, scores=[0.9, 0.1], min_score=0.2, thickness=3)
    assert left_out[70, 35].tolist() == list(RIGHT_COLOUR)             # the elbow, drawn
    assert left_out[90, 30].tolist() == [0, 0, 0]                      # the wrist, scored 0.1 <= 0.2: left out
    assert _pixel_between(left_out, pose[0], pose[1]) == (0, 0, 0)     # and the limb to it
    faint = draw_skeleton(blank, pose, subset, scores=[0.9, 0.3], faint_below=0.5, thickness=3,
                          box=(10, 10, 150, 170))
    assert faint[70, 35].tolist() == list(RIGHT_COLOUR)                # confident: full colour
    wrist = faint[90, 30].astype(int)
    assert 0 < wrist[0] < RIGHT_COLOUR[0] and wrist[0] == pytest.approx(0.35 * RIGHT_COLOUR[0], abs=2)
    top_edge = faint[10, 80]                                          # the box's thin white top edge, antialiased
    assert top_edge[0] == top_edge[1] == top_edge[2] > 200 and not left_out[10, 80].any()


# A COCO pose (image pixels, COCO order): a person facing the camera, their left on the image's right.
COCO_POSE = np.array([[80, 30], [90, 20], [70, 20], [100, 28], [60, 28], [100, 60], [60, 60], [110, 90], [50, 90],
                      [115, 120], [45, 120], [95, 120], [65, 120], [97, 150], [63, 150], [99, 175], [61, 175]],
                     float)


def test_a_coco17_skeleton_draws_its_own_edges_and_sides():
    subset = JointSubset.parse("coco17:all")
    blank = np.zeros((190, 160, 3), np.uint8)
    drawing = draw_skeleton(blank, COCO_POSE, subset, thickness=3)
    index = {name: k for k, name in enumerate(subset.names)}

    def edge(a, b, fraction=0.5):
        return _pixel_between(drawing, COCO_POSE[index[a]], COCO_POSE[index[b]], fraction)

    for fraction in (0.3, 0.5, 0.7):                                   # along the edge, not only at a joint
        assert edge("left_shoulder", "left_elbow", fraction) == LEFT_COLOUR
        assert edge("right_knee", "right_ankle", fraction) == RIGHT_COLOUR
    assert edge("left_shoulder", "right_shoulder") == MIDLINE_COLOUR   # across the body: on neither side
    assert edge("left_ear", "left_shoulder") == LEFT_COLOUR            # an edge MPII does not have
    assert edge("nose", "left_eye", 0.5) == LEFT_COLOUR
    assert drawing[30, 80].tolist() == list(MIDLINE_COLOUR)            # the nose, on the midline
    assert edge("left_wrist", "left_knee") == (0, 0, 0)                # no such edge in COCO's skeleton


def test_sides_come_from_the_names_whatever_order_the_flip_pairs_are_written_in():
    mpii, coco = JointSubset.parse("all").layout, JointSubset.parse("coco17:all").layout
    for layout in (mpii, coco):                                        # MPII writes right first, COCO left first
        left, right = joint_sides(layout)
        assert {layout.joints[i] for i in left} == {j for j in layout.joints if j.startswith("left_")}
        assert {layout.joints[i] for i in right} == {j for j in layout.joints if j.startswith("right_")}
    assert {mpii.joints[i] for i in joint_sides(mpii)[0]} == {
        "left_ankle", "left_knee", "left_hip", "left_wrist", "left_elbow", "left_shoulder"}

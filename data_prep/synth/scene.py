"""One generated image: figures placed in a scene, drawn in painter's order with occluders, and each person's
MPII annotation (joints, what MPII would annotate, visibility, objpos, scale, head box) plus what COCO's adds
(the face keypoints with their visibility, the silhouette's box and area).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from data_prep.synth.figure import (
    HEAD_TOP,
    L_HIP,
    L_KNE,
    NECK,
    PELVIS,
    R_HIP,
    R_KNE,
    THORAX,
    sample_body,
    sample_pose,
    sample_view,
    skeleton_3d,
)
from data_prep.synth.painting import (
    HEAD_JOINTS,
    Part,
    draw_background,
    draw_part,
    face_keypoints,
    figure_parts_3d,
    finish_image,
    head_geometry,
    occluder_polygon,
    random_colour,
    sample_palette,
    silhouette_box_and_area,
)
from kpt_tf.joints import NUM_JOINTS

# MPII's scale is derived from the head: head segment (upper neck -> head top) = 200 * scale / 6 px,
# and its head box is centred on that segment with a diagonal of 1.25 segments (checked on the real
# files: both ratios are constant over all people). A 0.75 x 1.0 segment box has exactly that diagonal.
HEAD_SEGMENTS_PER_BODY = 6.0
HEADBOX_WIDTH, HEADBOX_HEIGHT = 0.75, 1.0

# Image sizes (width, height) and how often: MPII is mostly 16:9 video frames and some 4:3, 480-1280 wide.
IMAGE_SIZES = ((1280, 720), (960, 540), (854, 480), (640, 480), (720, 480), (1024, 768), (640, 360),
               (800, 600), (480, 640), (720, 720))
IMAGE_SIZE_WEIGHTS = (0.16, 0.16, 0.16, 0.14, 0.08, 0.08, 0.08, 0.08, 0.03, 0.03)
PEOPLE_PER_IMAGE = (1, 2, 3)
PEOPLE_PER_IMAGE_WEIGHTS = (0.5, 0.32, 0.18)


# ----------------------------------------------------------------------------------------------
# Visibility
# ----------------------------------------------------------------------------------------------
def drawn_shapes(parts_in_draw_order: list[Part]) -> list[tuple]:
    """(bounding box low, high, contour) per drawn part, for `topmost_shape`: computed once per image."""
    return [(p.polygon.min(0), p.polygon.max(0), p.polygon.astype(np.float32).reshape(-1, 1, 2))
            for p in parts_in_draw_order]


def topmost_shape(shapes: list[tuple], x: float, y: float) -> int:
    """Draw-order index of the last drawn shape covering (x, y), -1 when none does."""
    for k in range(len(shapes) - 1, -1, -1):
        lo, hi, contour = shapes[k]
        if x < lo[0] or y < lo[1] or x > hi[0] or y > hi[1]:
            continue
        if cv2.pointPolygonTest(contour, (x, y), False) >= 0:
            return k
    return -1


def visibility(parts_in_draw_order: list[Part], person: int, joints2d, annotated, shapes=None) -> np.ndarray:
    """is_visible per joint: the topmost drawn shape covering the joint must be one of its own parts.

    `shapes`: drawn_shapes(parts_in_draw_order) when the caller has them already."""
    shapes = drawn_shapes(parts_in_draw_order) if shapes is None else shapes
    visible = np.zeros(NUM_JOINTS, bool)
    for j in np.flatnonzero(annotated):
        k = topmost_shape(shapes, float(joints2d[j, 0]), float(joints2d[j, 1]))
        part = parts_in_draw_order[k] if k >= 0 else None
        visible[j] = part is None or (part.person == person and j in part.own)
    return visible


def face_visibility(shapes: list[tuple], head_index: int, face_points, labelled, shown) -> np.ndarray:
    """COCO's "visible" for the face keypoints: labelled, on the side of the head the camera sees (`shown`, the
    painter's facing test) and not covered by a shape drawn after the head (another figure, an occluder, a
    raised hand). Shapes drawn before the head cannot cover it, which also keeps an ear on the head's outline
    visible where the drawn outline (a polygon inside the true ellipse) misses it."""
    visible = np.asarray(labelled, bool) & np.asarray(shown, bool)
    for k in np.flatnonzero(visible):
        visible[k] = topmost_shape(shapes, float(face_points[k, 0]), float(face_points[k, 1])) <= head_index
    return visible


# ----------------------------------------------------------------------------------------------
# Head box, records
# ----------------------------------------------------------------------------------------------
def head_box(neck, head_top) -> np.ndarray:
    """MPII-like head box [[x1, y1], [x2, y2]] (same pixel convention as the inputs).

    Centred on the head segment, 0.75 x 1.0 segment lengths: the real boxes are 0.76 x 0.99 on median
    and always have a diagonal of exactly 1.25 segments, which is what PCKh normalises by.
    """
    neck, head_top = np.asarray(neck, np.float64), np.asarray(head_top, np.float64)
    centre = 0.5 * (neck + head_top)
    seg = float(np.linalg.norm(head_top - neck))
    half = 0.5 * seg * np.array([HEADBOX_WIDTH, HEADBOX_HEIGHT])
    return np.stack([centre - half, centre + half])


def joints_inside(joints2d, width: int, height: int) -> np.ndarray:
    """Joints MPII would annotate: inside the image (0-based pixel area [0, w-1] x [0, h-1])."""
    j = np.asarray(joints2d)
    return (j[:, 0] >= 0) & (j[:, 1] >= 0) & (j[:, 0] <= width - 1) & (j[:, 1] <= height - 1)


def coco_fields(figure: dict, drawn: list[Part], shapes: list[tuple], width: int, height: int) -> dict:
    """What a COCO annotation adds to a figure's MPII one: the face keypoints (labelled = inside the image, as
    MPII's joints), their visibility, and the painted silhouette's box and area. The box also holds every
    labelled keypoint (an ear on the head's true outline can lie a hair outside the drawn polygon)."""
    face_joints, shown = figure["face"]
    head = next(part for part in figure["parts"] if part.own == HEAD_JOINTS)
    head_index = next(k for k, part in enumerate(drawn) if part is head)
    labelled = joints_inside(face_joints, width, height)
    box, area = silhouette_box_and_area(figure["parts"], width, height)
    limbs = figure["joints"][joints_inside(figure["joints"], width, height)]
    keypoints = np.concatenate([face_joints[labelled], limbs])
    box = np.concatenate([np.minimum(box[:2], keypoints.min(0, initial=np.inf)),
                          np.maximum(box[2:], keypoints.max(0, initial=-np.inf))])
    return dict(face_joints=face_joints, face_labelled=labelled,
                face_visible=face_visibility(shapes, head_index, face_joints, labelled, shown), box=box, area=area)


# ----------------------------------------------------------------------------------------------
# One synthetic image
# ----------------------------------------------------------------------------------------------
MIN_ANNOTATED_JOINTS = 6


def _place_person(rng, body, pose, view, width, height, slot, num_slots):
    """Pick the pelvis position: mostly inside, often cut at the bottom (legs), sometimes at a side."""
    skel = skeleton_3d(body, pose)
    m = view.image_matrix()
    rel = skel.joints @ m.T
    pts = np.concatenate([rel, skel.hand_tips @ m.T, skel.toes @ m.T])
    margin = 0.06 * view.height_px        # limb thickness, the head's width
    (x0, y0), (x1, y1) = pts.min(0) - margin, pts.max(0) + margin
    bw, bh = x1 - x0, y1 - y0
    for _ in range(8):
        cx = (slot + 0.5) / num_slots * width + rng.normal(0, 0.12 * width)
        if rng.random() < 0.12:                             # cut by the left or right border
            cx = (0 if rng.random() < 0.5 else width) + rng.uniform(-0.2, 0.2) * bw
        elif bw < width:                                    # keep the whole width inside
            cx = float(np.clip(cx - 0.5 * bw, 0, width - bw)) + 0.5 * bw
        px = cx - 0.5 * (x0 + x1)
        if bh < 0.98 * height and rng.random() < 0.5:
            top = rng.uniform(0, height - bh)
        else:                                               # head near the top, the rest cut off below
            top = rng.uniform(0.01, 0.12) * height
        py = top - y0
        joints2d = rel + [px, py]
        inside = joints_inside(joints2d, width, height)
        objpos = joints2d[PELVIS] + 0.3 * (joints2d[THORAX] - joints2d[PELVIS])
        if inside.sum() >= MIN_ANNOTATED_JOINTS and 0 <= objpos[0] < width and 0 <= objpos[1] < height:
            return np.array([px, py])
    # Fallback: centre the figure.
    return np.array([0.5 * width - 0.5 * (x0 + x1), 0.5 * height - 0.5 * (y0 + y1)])


def render_synthetic_image(rng, num_people: int, size: tuple[int, int] | None = None,
                           return_layers: bool = False):
    """Draw one image with `num_people` figures.

    Returns (image BGR uint8, people); with `return_layers` also the background and the image before
    camera effects. Each person is a dict with 0-based `joints` (16, 2, true positions, also outside the
    image), `annotated`, `visible` (16,) bools, `objpos` (2,), `scale`, `headbox` (2, 2) 0-based, and for
    COCO (`coco_fields`) `face_joints` (5, 2) with `face_labelled`, `face_visible`, `box` (x1, y1, x2, y2), `area`.
    """
    if size is None:
        size = IMAGE_SIZES[int(rng.choice(len(IMAGE_SIZES), p=IMAGE_SIZE_WEIGHTS))]
    width, height = size
    background = draw_background(rng, height, width)
    image = background.copy()
    # People in one image have similar sizes (same shot), spread over horizontal slots.
    base_ratio = min(1.9, max(0.22, math.exp(rng.normal(math.log(0.85), 0.42))))
    if num_people > 1:
        base_ratio *= 0.85
    slots = rng.permutation(num_people)
    figures = []
    for i in range(num_people):
        height_px = float(np.clip(base_ratio * rng.uniform(0.8, 1.2), 0.15, 2.0)) * height
        body, pose = sample_body(rng), sample_pose(rng)
        view = sample_view(rng, height_px)
        view.pelvis = _place_person(rng, body, pose, view, width, height, int(slots[i]), num_people)
        palette = sample_palette(rng)
        skel = skeleton_3d(body, pose)
        parts, joints2d = figure_parts_3d(body, pose, view, palette, i, skel)
        figures.append(dict(body=body, view=view, parts=parts, joints=joints2d,
                            face=face_keypoints(*head_geometry(body, skel, view))))
    # Painter's order: smaller (farther) people first, each person's parts far to near.
    drawn: list[Part] = []
    for i in sorted(range(num_people), key=lambda k: figures[k]["view"].height_px):
        outline = max(1, int(round(figures[i]["view"].height_px * 0.004)))
        for part in sorted(figures[i]["parts"], key=lambda p: p.depth):
            draw_part(image, part, outline)
            drawn.append(part)
    # Occluders: objects in front of a joint, or a table/bar across the legs.
    for fig in figures:
        inside = joints_inside(fig["joints"], width, height)
        for _ in range(int(rng.random() < 0.45) + int(rng.random() < 0.12)):
            hp = fig["view"].height_px
            candidates = np.flatnonzero(inside & (np.arange(NUM_JOINTS) != PELVIS))
            if candidates.size == 0:
                break
            if rng.random() < 0.12:     # a table or railing in front of the legs
                top = fig["joints"][[R_KNE, L_KNE, R_HIP, L_HIP], 1].mean() + rng.uniform(-0.05, 0.1) * hp
                cx = fig["joints"][PELVIS, 0] + rng.normal(0, 0.1 * hp)
                half = rng.uniform(0.2, 0.45) * hp
                depth = rng.uniform(0.12, 0.35) * hp
                poly = np.array([[cx - half, top], [cx + half, top], [cx + half, top + depth],
                                 [cx - half, top + depth]])
            else:
                j = int(rng.choice(candidates))
                centre = fig["joints"][j] + rng.normal(0, 0.04 * hp, 2)
                poly = occluder_polygon(rng, centre, rng.uniform(0.1, 0.3) * hp)
            occluder = Part(poly, random_colour(rng), 0.0)
            draw_part(image, occluder, max(1, int(round(hp * 0.004))))
            drawn.append(occluder)
    people = []
    shapes = drawn_shapes(drawn)
    for i, fig in enumerate(figures):
        j2d = fig["joints"]
        annotated = joints_inside(j2d, width, height)
        visible = visibility(drawn, i, j2d, annotated, shapes)
        hp = fig["view"].height_px
        # MPII semantics: objpos is a rough centre (between pelvis and thorax, nearer the pelvis);
        # scale * 200 px is the person height, MPII derives it from the head (segment = 200 s / 6).
        objpos = j2d[PELVIS] + 0.3 * (j2d[THORAX] - j2d[PELVIS]) + rng.normal(0, 0.02 * hp, 2)
        scale = HEAD_SEGMENTS_PER_BODY * fig["body"].head_len * hp / 200.0
        people.append(dict(joints=j2d, annotated=annotated, visible=visible & annotated,
                           objpos=np.round(objpos), scale=round(scale, 3),
                           headbox=head_box(j2d[NECK], j2d[HEAD_TOP]),
                           **coco_fields(fig, drawn, shapes, width, height)))
    finished = finish_image(rng, image)
    if return_layers:
        return finished, people, background, image
    return finished, people


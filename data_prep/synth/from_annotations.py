"""Figures rendered at real poses (`--from_annotations`): the people of an MPII annotation file, drawn at their
joints, centres, scales and image sizes, with the records copied and a `headbox` added.

Joints that are not annotated are filled in for drawing only (`infer_missing_joints`) and stay not annotated;
limbs with occluded joints go behind the torso, or under an object.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import cv2
import numpy as np

from data_prep.synth.figure import (
    HEAD_CENTRE_AT,
    HEAD_HALF_HEIGHT,
    HEAD_TOP,
    L_ANK,
    L_ELB,
    L_HIP,
    L_KNE,
    L_SHO,
    L_WRI,
    NECK,
    NECK_INTO_HEAD,
    PELVIS,
    R_ANK,
    R_ELB,
    R_HIP,
    R_KNE,
    R_SHO,
    R_WRI,
    THORAX,
    Body,
    Frame2D,
    View,
    rest_pose,
    skeleton_3d,
    torso_points,
)
from data_prep.synth.generate import check_count, prepare_output, run_tasks, write_ground_truth, write_jpeg
from data_prep.synth.painting import (
    LIMBS,
    Part,
    capsule,
    draw_background,
    draw_part,
    finish_image,
    head_part,
    hull,
    occluder_polygon,
    random_colour,
    sample_palette,
    torso_decorations,
    unit_vector,
)
from data_prep.synth.scene import head_box
from kpt_tf.joints import NUM_JOINTS
from kpt_tf.mpii.annotations import AnnotationError, load_json_records, people_from_json_records, write_json_annotations
from kpt_tf.mpii.coords import from_one_based

# What rendering needs of a record (the converter needs less: kpt_tf.mpii.annotations).
RENDER_KEYS = ("isValidation", "img_paths", "img_width", "img_height", "objpos", "joint_self", "scale_provided")


def _template_2d() -> np.ndarray:
    """Rest pose seen from the front, body-height units, image orientation (y down), pelvis at 0."""
    view = View(0.0, 0.0, 0.0, 1.0, np.zeros(2))
    skel = skeleton_3d(Body(), rest_pose())
    return skel.joints @ view.image_matrix().T


TEMPLATE_2D = _template_2d()
# Neighbours used to extend a known joint to an unknown one (skeleton plus the left-right links).
_NEIGHBOURS = {
    PELVIS: (R_HIP, L_HIP, THORAX), THORAX: (R_SHO, L_SHO, NECK, PELVIS), NECK: (THORAX, HEAD_TOP),
    HEAD_TOP: (NECK,), R_HIP: (PELVIS, L_HIP, R_KNE), L_HIP: (PELVIS, R_HIP, L_KNE),
    R_KNE: (R_HIP, R_ANK), L_KNE: (L_HIP, L_ANK), R_ANK: (R_KNE,), L_ANK: (L_KNE,),
    R_SHO: (THORAX, L_SHO, R_ELB), L_SHO: (THORAX, R_SHO, L_ELB), R_ELB: (R_SHO, R_WRI), L_ELB: (L_SHO, L_WRI),
    R_WRI: (R_ELB,), L_WRI: (L_ELB,),
}
# Distal joints continue the straight line of their limb: (joint, parent, grandparent).
_CONTINUE = {R_ANK: (R_KNE, R_HIP), L_ANK: (L_KNE, L_HIP), R_WRI: (R_ELB, R_SHO), L_WRI: (L_ELB, L_SHO)}


def infer_missing_joints(joints, annotated, height_px: float, objpos) -> np.ndarray:
    """Plausible positions for unannotated joints (for drawing only).

    A rigid fit of the standing template to the annotated joints orients it; each missing joint then
    hangs off a known neighbour by the template's offset (distal ones continue their limb's line).
    """
    joints = np.asarray(joints, np.float64).copy()
    known = np.asarray(annotated, bool).copy()
    template = TEMPLATE_2D * height_px
    rotation = np.eye(2)
    if known.sum() >= 2:
        src = template[known] - template[known].mean(0)
        dst = joints[known] - joints[known].mean(0)
        u, _, vt = np.linalg.svd(src.T @ dst)
        d = np.sign(np.linalg.det(u @ vt)) or 1.0
        rotation = (u @ np.diag([1.0, d]) @ vt).T
        if d < 0:            # a mirrored fit (e.g. the figure seen from behind) is not a rotation
            rotation = np.eye(2) if abs(np.linalg.det(rotation)) < 0.5 else rotation
        shift = joints[known].mean(0) - template[known].mean(0) @ rotation.T
    elif known.sum() == 1:
        j = int(np.flatnonzero(known)[0])
        shift = joints[j] - template[j]
    else:                    # nothing annotated: objpos sits ~0.09 body heights above the pelvis
        shift = np.asarray(objpos, np.float64) + [0.0, 0.09 * height_px]
    placed = template @ rotation.T + shift
    for _ in range(NUM_JOINTS):
        progress = False
        for j in range(NUM_JOINTS):
            if known[j]:
                continue
            if j in _CONTINUE and known[_CONTINUE[j][0]] and known[_CONTINUE[j][1]]:
                parent, grand = _CONTINUE[j]
                direction = joints[parent] - joints[grand]
                norm = np.linalg.norm(direction)
                length = np.linalg.norm(template[j] - template[parent])
                if norm > 1e-6:
                    joints[j] = joints[parent] + direction / norm * length
                    known[j] = progress = True
                    continue
            for n in _NEIGHBOURS[j]:
                if known[n]:
                    joints[j] = joints[n] + (template[j] - template[n]) @ rotation.T
                    known[j] = progress = True
                    break
        if not progress:
            break
    joints[~known] = placed[~known]
    return joints


def _pseudo_frame(origin, up_vector, up_length_units, cos_yaw, sin_yaw, height_px) -> Frame2D:
    """A local frame for a 2D figure part: y along `up_vector` (scaled so `up_length_units` fits it),
    x/z rotated by the figure's yaw about that axis."""
    up = np.asarray(up_vector, np.float64)
    norm = float(np.linalg.norm(up))
    up_unit = up / norm if norm > 1e-6 else np.array([0.0, -1.0])
    across = np.array([-up_unit[1], up_unit[0]])     # image direction of the person's left when facing us
    y_col = up / up_length_units if norm > 1e-6 else up_unit * height_px
    matrix = np.stack([cos_yaw * across * height_px, y_col, sin_yaw * across * height_px], 1)
    return Frame2D(np.asarray(origin, np.float64), matrix, np.array([-sin_yaw, 0.0, cos_yaw]))


def figure_parts_2d(rng, joints, annotated, visible, scale: float, objpos, palette: dict, person: int):
    """Parts of a figure drawn at given 2D joints (0-based); limbs with occluded joints go behind."""
    height_px = 200.0 * scale
    body = Body()
    j = infer_missing_joints(joints, annotated, height_px, objpos)
    torso_up = j[THORAX] - j[PELVIS]
    if np.linalg.norm(torso_up) < 1e-3:
        torso_up = np.array([0.0, -body.spine * height_px])
    lateral = j[L_SHO] - j[R_SHO] + 0.5 * (j[L_HIP] - j[R_HIP])
    up_unit = torso_up / np.linalg.norm(torso_up)
    across = np.array([-up_unit[1], up_unit[0]])
    # Facing: the left shoulder appears on the figure's image-right when it faces the camera.
    cos_yaw = float(np.clip((lateral @ across) / (1.5 * 2 * body.sho_half * height_px), -1, 1))
    sin_yaw = math.sqrt(max(0.0, 1 - cos_yaw ** 2)) * (1 if rng.random() < 0.5 else -1)
    hidden = np.asarray(annotated, bool) & ~np.asarray(visible, bool)
    parts = []
    for name, a, b, own, colour_key, wa, wb, bias in LIMBS:
        pa = j[a]
        if isinstance(b, int):
            pb = j[b]
        elif b.startswith("tip"):
            wri, elb = (R_WRI, R_ELB) if b.endswith("R") else (L_WRI, L_ELB)
            pb = j[wri] + unit_vector(j[wri] - j[elb]) * body.hand * height_px
        else:
            ank, kne = (R_ANK, R_KNE) if b.endswith("R") else (L_ANK, L_KNE)
            shin = unit_vector(j[ank] - j[kne])
            toward = across * sin_yaw
            pb = j[ank] + (0.3 * shin + toward) * body.foot * height_px
        depth = -1.0 if any(hidden[k] for k in own if k not in (PELVIS, THORAX)) else 0.5 + bias
        if name == "neck":
            depth = 1.5
            pb = pb + NECK_INTO_HEAD * (j[HEAD_TOP] - j[NECK])
        parts.append(Part(capsule(pa, pb, 0.5 * wa * height_px, 0.5 * wb * height_px), palette[colour_key],
                          depth, frozenset(own), person))
    torso_frame = _pseudo_frame(j[PELVIS], torso_up, body.spine, cos_yaw, sin_yaw, height_px)
    torso_pts = torso_frame.project(torso_points(body, np.eye(3)))
    for k in (R_SHO, L_SHO, R_HIP, L_HIP):
        torso_pts = np.concatenate([torso_pts, [j[k] + 0.03 * height_px * up_unit, j[k] - 0.03 * height_px * up_unit]])
    parts.append(Part(hull(torso_pts), palette["shirt"], 0.0, frozenset((R_HIP, L_HIP, PELVIS, THORAX, R_SHO, L_SHO)),
                      person, torso_decorations(torso_frame, body, palette)))
    head_up = j[HEAD_TOP] - j[NECK]
    if np.linalg.norm(head_up) < 1e-3:
        head_up = up_unit * body.head_len * height_px
    head_frame = _pseudo_frame(j[NECK] + HEAD_CENTRE_AT * head_up, head_up, body.head_len, cos_yaw, sin_yaw,
                               height_px)
    radii = (0.5 * body.head_width, HEAD_HALF_HEIGHT * body.head_len, 0.5 * body.head_depth)
    parts.append(head_part(head_frame, radii, palette, 2.0, person))
    return parts, j


def render_annotated_image(rng, width: int, height: int, people: list[dict]) -> np.ndarray:
    """Draw figures at the given poses; `people`: dicts with 0-based `joints` (16, 2), `annotated` and `visible`
    (16,) bools, `scale` and 0-based `objpos`."""
    image = draw_background(rng, height, width)
    order = sorted(range(len(people)), key=lambda k: people[k]["scale"])
    drawn = []
    for i in order:
        p = people[i]
        annotated, visible = np.asarray(p["annotated"], bool), np.asarray(p["visible"], bool)
        joints0 = np.asarray(p["joints"], np.float64)
        objpos0 = np.asarray(p["objpos"], np.float64)
        scale = float(p["scale"]) if float(p["scale"]) > 0 else 1.0
        parts, full = figure_parts_2d(rng, joints0, annotated, visible, scale, objpos0, sample_palette(rng), i)
        outline = max(1, int(round(200 * scale * 0.004)))
        person_parts = sorted(parts, key=lambda q: q.depth)
        for part in person_parts:
            draw_part(image, part, outline)
        drawn.extend(person_parts)
        # Joints marked occluded but still in plain sight (not under the torso): put an object over them.
        torso = next(q for q in parts if THORAX in q.own and PELVIS in q.own)
        contour = torso.polygon.astype(np.float32).reshape(-1, 1, 2)
        for k in np.flatnonzero(annotated & ~visible):
            if k in (PELVIS, THORAX, NECK, HEAD_TOP) or rng.random() > 0.75:
                continue
            if cv2.pointPolygonTest(contour, (float(joints0[k, 0]), float(joints0[k, 1])), False) >= 0:
                continue
            size = rng.uniform(0.1, 0.18) * 200 * scale
            occluder = Part(occluder_polygon(rng, joints0[k] + rng.normal(0, 0.02 * 200 * scale, 2), size),
                            random_colour(rng), 0.0)
            draw_part(image, occluder, outline)
    return finish_image(rng, image)


def _annotated_task(task):
    index, name, width, height, people, seed, images_dir = task
    rng = np.random.default_rng([seed, index])
    image = render_annotated_image(rng, width, height, people)
    write_jpeg(Path(images_dir) / name, image)
    return name


def read_renderable(path) -> tuple[list[dict], list]:
    """(records as stored, people read from them) of an mpii_annotations-style .json/.json.gz that can be
    rendered: every record has an image size, a positive scale and a safe relative image path.
    FileNotFoundError when the file is missing, AnnotationError (a ValueError) when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotations file {path} not found")
    records = load_json_records(path, RENDER_KEYS)
    if not records:
        raise AnnotationError(f"annotations file {path} must hold a non-empty JSON list of person records")
    people = people_from_json_records(records, f"annotations file {path}:")
    for i, r in enumerate(records):
        name = str(r["img_paths"])
        if os.path.isabs(name) or ".." in Path(name).parts or not name:
            raise AnnotationError(f"annotations file {path}: record {i} has an unsafe image path {name!r}")
        try:
            size_ok = float(r["img_width"]) >= 1 and float(r["img_height"]) >= 1 and float(r["scale_provided"]) > 0
        except (TypeError, ValueError):
            size_ok = False
        if not size_ok:
            raise AnnotationError(f"annotations file {path}: record {i} has image size {r['img_width']!r} x "
                                  f"{r['img_height']!r} or scale {r['scale_provided']!r} that is not a positive "
                                  "number")
    return records, people


def render_from_annotations(annotations_path, output_dir, max_people: int | None = None, seed: int = 0,
                            num_workers: int | None = None) -> dict:
    """Render figures at the poses of a real annotation file (every person of each used image)."""
    if max_people is not None:
        check_count("max_people", max_people, 1)
    check_count("seed", seed)
    if num_workers is not None:
        check_count("num_workers", num_workers, 1)
    start = time.perf_counter()
    records, people = read_renderable(annotations_path)
    out = prepare_output(output_dir)
    selected = records if max_people is None else records[:max_people]
    by_image: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_image.setdefault(r["img_paths"], []).append(i)
    names = list(dict.fromkeys(r["img_paths"] for r in selected))
    tasks = []
    for index, name in enumerate(names):
        group = by_image[name]
        figures = [dict(joints=people[i].joints, annotated=people[i].annotated.astype(bool),
                        visible=people[i].visible.astype(bool), scale=people[i].scale,
                        objpos=from_one_based(records[i]["objpos"])) for i in group]
        first = records[group[0]]
        tasks.append((index, name, int(round(first["img_width"])), int(round(first["img_height"])), figures,
                      int(seed), str(out / "images")))
    run_tasks(_annotated_task, tasks, num_workers)
    out_records = []
    for r, person in zip(selected, people):
        # The box is made in the file's own (1-based) pixels, beside the joints it is written with.
        rows = np.asarray(r["joint_self"], np.float64)
        # Head box from the annotated head segment; an unannotated one is placed like a drawn head.
        if not (person.annotated[NECK] and person.annotated[HEAD_TOP]):
            scale = float(r["scale_provided"]) if float(r["scale_provided"]) > 0 else 1.0
            full = infer_missing_joints(rows[:, :2], person.annotated.astype(bool), 200.0 * scale,
                                        np.asarray(r["objpos"], float))
            neck, top = full[NECK], full[HEAD_TOP]
        else:
            neck, top = rows[NECK, :2], rows[HEAD_TOP, :2]
        record = dict(r)
        record["headbox"] = np.round(head_box(neck, top), 3).tolist()
        out_records.append(record)
    write_json_annotations(out / "annotations.json", out_records)
    write_ground_truth(out / "gt_val.mat", [r for r in out_records if float(r["isValidation"]) == 1.0])
    seconds = time.perf_counter() - start
    return dict(people=len(out_records), val=sum(float(r["isValidation"]) == 1.0 for r in out_records),
                images=len(names), seconds=seconds, people_per_second=len(out_records) / max(seconds, 1e-9),
                output_dir=str(out))

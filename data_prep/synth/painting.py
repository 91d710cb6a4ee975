"""Painting the generator's figures: drawable parts, colours and palettes, drawing, backgrounds, occluders and
the camera's finishing touches.

Left and right limbs always share colours: which arm is the right one can only be told from where the figure
faces (face, nose, collar, feet), as on real photos.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from data_prep.synth.figure import (
    FORWARD,
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
    Skeleton3D,
    View,
    skeleton_3d,
    torso_points,
)


# ----------------------------------------------------------------------------------------------
# Drawable parts
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Part:
    polygon: np.ndarray                 # (N, 2) float image coordinates
    colour: tuple
    depth: float
    own: frozenset = frozenset()        # joints this part shows (it does not occlude them)
    person: int = -1                    # -1: an occluder
    extras: list = dataclasses.field(default_factory=list)   # (kind, points, colour, size) drawn on top


_CAP_FRONT = np.stack([np.cos(a := np.linspace(-np.pi / 2, np.pi / 2, 7)), np.sin(a)], 1)
_CAP_BACK = -_CAP_FRONT


def capsule(p0, p1, r0, r1) -> np.ndarray:
    """Polygon of a tapered capsule from p0 (radius r0) to p1 (radius r1)."""
    p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    length = math.hypot(dx, dy)
    dx, dy = (dx / length, dy / length) if length > 1e-6 else (1.0, 0.0)
    rotation = np.array([[dx, -dy], [dy, dx]])
    # Half circles: around p1 facing away from p0, around p0 facing away from p1.
    return np.concatenate([p1 + r1 * (_CAP_FRONT @ rotation.T), p0 + r0 * (_CAP_BACK @ rotation.T)])


def hull(points) -> np.ndarray:
    return cv2.convexHull(np.asarray(points, np.float32)).reshape(-1, 2).astype(np.float64)


def _ellipsoid_grid(n_lat: int, n_lon: int) -> np.ndarray:
    lat = np.linspace(-np.pi / 2, np.pi / 2, n_lat)
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    return np.stack([np.cos(la) * np.sin(lo), np.sin(la), np.cos(la) * np.cos(lo)], -1).reshape(-1, 3)


_SPHERE = _ellipsoid_grid(9, 16)
# Directions of the face area: in front (z > 0.3) and below the hairline (y < 0.45).
_FACE_DIRS = _SPHERE[(_SPHERE[:, 2] > 0.3) & (_SPHERE[:, 1] < 0.45)]
_CAP_DIRS = _SPHERE[_SPHERE[:, 1] > 0.3]


def unit_vector(v):
    v = np.asarray(v, np.float64)
    return v / max(float(np.linalg.norm(v)), 1e-9)


# Where head_part paints the face (unit-sphere directions, scaled onto the head ellipsoid; +x is the person's left)
# and how far a feature's surface must face the camera to be painted. The COCO face keypoints
# (`face_keypoints`) are read from the same numbers, so they sit on the painted pixels.
EYE_DIRECTIONS = {"right_eye": (-0.4, 0.12, 0.9), "left_eye": (0.4, 0.12, 0.9)}
NOSE_DIRECTION = (0.0, -0.1, 1.0)
EYE_SHOWN_FACING = 0.15
NOSE_SHOWN_FACING = -0.4          # the nose sticks out of a profile's silhouette
# Ears are not painted; real ones stick out of the head's sides, so they still show while the head turns a
# little away (facing slightly below 0) and are hidden once the side turns further from the camera.
EAR_SHOWN_FACING = -0.2
FACE_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")   # COCO's names and order
HEAD_JOINTS = frozenset((NECK, HEAD_TOP))      # the MPII joints the head part shows


def head_surface(frame: Frame2D, radii: np.ndarray, direction) -> tuple[np.ndarray, float]:
    """The head ellipsoid's point in `direction` (head frame) and how much its surface faces the camera."""
    d = unit_vector(direction)
    point = d * radii
    normal = unit_vector(d / radii)
    return point, float(frame.facing(normal))


def head_geometry(body: Body, skel: Skeleton3D, view: View) -> tuple[Frame2D, tuple[float, float, float]]:
    """The head's frame (centre and rotation into the image) and the head ellipsoid's radii."""
    frame = view.frame(skel.head_centre, skel.head_rotation)
    return frame, (0.5 * body.head_width, HEAD_HALF_HEIGHT * body.head_len, 0.5 * body.head_depth)


def nose_outline(radii: np.ndarray) -> np.ndarray:
    """The painted nose (head frame): a wedge from the bridge to a tip that sticks out of the head."""
    rx, ry, rz = radii
    return np.array([[-0.2 * rx, -0.3 * ry, 0.92 * rz], [0.0, 0.12 * ry, 0.98 * rz],
                     [0.2 * rx, -0.3 * ry, 0.92 * rz], [0.0, -0.22 * ry, 1.28 * rz]])


def face_keypoints(frame: Frame2D, radii) -> tuple[np.ndarray, np.ndarray]:
    """COCO's face keypoints (FACE_KEYPOINTS order) in image pixels, and whether the camera sees each one.

    Nose and eyes are the surface points head_part paints them at, seen by its own facing tests; an eye the
    painted nose covers (the far eye of a near profile: the nose is painted after the eyes) is not seen. The
    ears are the ellipsoid's sides (+-x) at eye height."""
    radii = np.asarray(radii, np.float64)
    eye_height = unit_vector(EYE_DIRECTIONS["left_eye"])[1]
    ear_side = math.sqrt(1.0 - eye_height ** 2)
    where = {"nose": (NOSE_DIRECTION, NOSE_SHOWN_FACING),
             "left_eye": (EYE_DIRECTIONS["left_eye"], EYE_SHOWN_FACING),
             "right_eye": (EYE_DIRECTIONS["right_eye"], EYE_SHOWN_FACING),
             "left_ear": ((ear_side, eye_height, 0.0), EAR_SHOWN_FACING),
             "right_ear": ((-ear_side, eye_height, 0.0), EAR_SHOWN_FACING)}
    points, shown = np.zeros((len(FACE_KEYPOINTS), 3)), np.zeros(len(FACE_KEYPOINTS), bool)
    for k, name in enumerate(FACE_KEYPOINTS):
        direction, threshold = where[name]
        points[k], facing = head_surface(frame, radii, direction)
        shown[k] = facing > threshold
    pixels = frame.project(points)
    if shown[FACE_KEYPOINTS.index("nose")]:
        nose = hull(frame.project(nose_outline(radii))).astype(np.float32)
        for eye in ("left_eye", "right_eye"):
            k = FACE_KEYPOINTS.index(eye)
            shown[k] &= cv2.pointPolygonTest(nose, tuple(float(v) for v in pixels[k]), False) < 0
    return pixels, shown


def head_part(frame: Frame2D, radii, palette: dict, depth: float, person: int) -> Part:
    """Head: hair-coloured ellipsoid, skin face on its front side with eyes, nose and mouth.

    The face is what tells the figure's facing direction (and so its left from its right).
    """
    radii = np.asarray(radii, np.float64)
    silhouette = hull(frame.project(_SPHERE * radii))
    extras = []

    def surface(direction):
        return head_surface(frame, radii, direction)

    face_points = _FACE_DIRS * radii
    face_normals = _FACE_DIRS / radii
    face_normals /= np.linalg.norm(face_normals, axis=1, keepdims=True)
    seen = frame.facing(face_normals) > 0.02
    if seen.sum() >= 3:
        extras.append(("poly", hull(frame.project(face_points[seen])), palette["skin"], 0))
    if palette.get("hat") is not None:
        extras.append(("poly", hull(frame.project(_CAP_DIRS * radii * 1.06)), palette["hat"], 0))
    rx, ry, rz = radii
    eye_size = 0.14 * rx
    for eye in ("right_eye", "left_eye"):
        point, facing = surface(EYE_DIRECTIONS[eye])
        if facing > EYE_SHOWN_FACING:
            extras.append(("dot", frame.project(point[None])[0:1], palette["eyes"], eye_size * frame_scale(frame)))
    _, facing = surface(NOSE_DIRECTION)
    if facing > NOSE_SHOWN_FACING:
        extras.append(("poly", hull(frame.project(nose_outline(radii))), palette["nose"], 0))
    _, facing = surface([0.0, -0.55, 0.83])
    if facing > 0.1:
        mouth = np.array([[-0.3 * rx, -0.56 * ry, 0.8 * rz], [0.3 * rx, -0.56 * ry, 0.8 * rz]])
        extras.append(("line", frame.project(mouth), palette["mouth"], max(1.0, 0.05 * rx * frame_scale(frame))))
    return Part(silhouette, palette["hair"], depth, HEAD_JOINTS, person, extras)


def frame_scale(frame: Frame2D) -> float:
    """Pixels per body-height unit of a frame (its largest singular value)."""
    return float(np.linalg.svd(frame.matrix, compute_uv=False).max())


def torso_decorations(frame: Frame2D, body: Body, palette: dict) -> list:
    """Front-only marks (collar, buttons or emblem): midline, so they tell front from back, not sides."""
    if frame.facing(FORWARD) < 0.12:
        return []
    g, top = body.girth, body.spine
    collar = np.array([[-0.04, top - 0.002, 0.05 * g], [0.04, top - 0.002, 0.05 * g], [0.0, top - 0.075, 0.068 * g]])
    extras = [("poly", frame.project(collar), palette["skin"], 0)]
    style = palette["shirt_mark"]
    if style == "buttons":
        for y in (top - 0.1, top - 0.15, top - 0.2):
            extras.append(("dot", frame.project([[0.0, y, 0.068 * g]]), palette["mark"], 0.008 * frame_scale(frame)))
    elif style == "emblem":
        centre = frame.project([[0.0, top - 0.12, 0.07 * g]])
        extras.append(("dot", centre, palette["mark"], 0.028 * frame_scale(frame)))
    elif style == "belt":
        extras.append(("poly", frame.project([[-0.02, 0.02, 0.075 * g], [0.02, 0.02, 0.075 * g],
                                              [0.02, -0.015, 0.075 * g], [-0.02, -0.015, 0.075 * g]]),
                       palette["mark"], 0))
    return extras


# Parts of a figure: (name, joint a, joint b or tip, own joints, colour key, diameter at a, at b, depth bias).
# "tip:R"/"tip:L" are the hand tips, "toe:R"/"toe:L" the toes.
LIMBS = (
    ("r_upper_arm", R_SHO, R_ELB, (R_SHO, R_ELB), "shirt", 0.058, 0.046, 0.02),
    ("l_upper_arm", L_SHO, L_ELB, (L_SHO, L_ELB), "shirt", 0.058, 0.046, 0.02),
    ("r_forearm", R_ELB, R_WRI, (R_ELB, R_WRI), "sleeve", 0.046, 0.036, 0.025),
    ("l_forearm", L_ELB, L_WRI, (L_ELB, L_WRI), "sleeve", 0.046, 0.036, 0.025),
    ("r_hand", R_WRI, "tip:R", (R_WRI,), "skin", 0.036, 0.042, 0.03),
    ("l_hand", L_WRI, "tip:L", (L_WRI,), "skin", 0.036, 0.042, 0.03),
    ("r_thigh", R_HIP, R_KNE, (R_HIP, R_KNE), "pants", 0.095, 0.062, -0.03),
    ("l_thigh", L_HIP, L_KNE, (L_HIP, L_KNE), "pants", 0.095, 0.062, -0.03),
    ("r_shin", R_KNE, R_ANK, (R_KNE, R_ANK), "legwear", 0.062, 0.044, -0.02),
    ("l_shin", L_KNE, L_ANK, (L_KNE, L_ANK), "legwear", 0.062, 0.044, -0.02),
    ("r_foot", R_ANK, "toe:R", (R_ANK,), "shoes", 0.045, 0.04, -0.01),
    ("l_foot", L_ANK, "toe:L", (L_ANK,), "shoes", 0.045, 0.04, -0.01),
    ("neck", THORAX, NECK, (THORAX, NECK), "skin", 0.055, 0.05, 0.04),
)


def _endpoint(name_or_index, joints, tips, toes):
    if isinstance(name_or_index, int):
        return joints[name_or_index]
    kind, side = name_or_index.split(":")
    return (tips if kind == "tip" else toes)[0 if side == "R" else 1]


def figure_parts_3d(body: Body, pose: dict, view: View, palette: dict, person: int,
                    skel: Skeleton3D | None = None):
    """Drawable parts of a posed figure and its 16 joints in image pixels (0-based).

    `skel`: the figure's skeleton_3d(body, pose) when the caller has it already."""
    skel = skeleton_3d(body, pose) if skel is None else skel
    m = view.image_matrix()
    cam = view.camera()

    def to_image(p):
        return view.pelvis + np.asarray(p) @ m.T

    def depth_of(p):
        return np.asarray(p) @ cam[2]

    joints2d = to_image(skel.joints)
    tips2d, toes2d = to_image(skel.hand_tips), to_image(skel.toes)
    jdepth = depth_of(skel.joints)
    tip_depth, toe_depth = depth_of(skel.hand_tips), depth_of(skel.toes)
    scale = view.height_px * body.limb
    parts = []
    for name, a, b, own, colour_key, wa, wb, bias in LIMBS:
        pa = _endpoint(a, joints2d, tips2d, toes2d)
        pb = _endpoint(b, joints2d, tips2d, toes2d)
        if name == "neck":
            pb = pb + NECK_INTO_HEAD * (joints2d[HEAD_TOP] - joints2d[NECK])
        da = _endpoint(a, jdepth, tip_depth, toe_depth)
        db = _endpoint(b, jdepth, tip_depth, toe_depth)
        limb_scale = view.height_px if name == "neck" else scale
        poly = capsule(pa, pb, 0.5 * wa * limb_scale, 0.5 * wb * limb_scale)
        parts.append(Part(poly, palette[colour_key], float(0.5 * (da + db)) + bias, frozenset(own), person))
    torso_3d = torso_points(body, skel.torso_rotation)
    torso_frame = view.frame(np.zeros(3), skel.torso_rotation)
    parts.append(Part(hull(to_image(torso_3d)), palette["shirt"], float(depth_of(torso_3d).mean()),
                      frozenset((R_HIP, L_HIP, PELVIS, THORAX, R_SHO, L_SHO)), person,
                      torso_decorations(torso_frame, body, palette)))
    head_frame, radii = head_geometry(body, skel, view)
    parts.append(head_part(head_frame, radii, palette, float(depth_of(skel.head_centre)) + 0.06, person))
    return parts, joints2d


# ----------------------------------------------------------------------------------------------
# Colours
# ----------------------------------------------------------------------------------------------
_SKIN_RGB = ((255, 224, 196), (241, 194, 164), (224, 172, 138), (198, 134, 104), (161, 102, 73),
             (120, 78, 55), (88, 57, 40), (236, 188, 150))
_HAIR_RGB = ((20, 18, 18), (45, 30, 22), (90, 60, 35), (140, 100, 60), (200, 170, 110), (150, 150, 150),
             (120, 50, 30))


def _bgr(rgb, gain=1.0):
    return tuple(min(255.0, max(0.0, float(c) * gain)) for c in rgb[::-1])


def random_colour(rng, gain=1.0):
    hue = rng.uniform(0, 180)
    sat = rng.uniform(0, 60) if rng.random() < 0.4 else rng.uniform(80, 255)
    val = rng.uniform(35, 245)
    hsv = np.array([[[hue, sat, val]]], np.uint8)
    return _bgr(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(float), gain)


def sample_palette(rng) -> dict:
    """One person's colours. Left and right always share them (left/right must come from context)."""
    gain = float(rng.uniform(0.75, 1.15))     # lighting on this person
    skin = _SKIN_RGB[int(rng.integers(len(_SKIN_RGB)))]
    skin_bgr = _bgr(skin, gain)
    hair = _HAIR_RGB[int(rng.integers(len(_HAIR_RGB)))]
    if rng.random() < 0.08:                   # bald or shaved: the back of the head is skin too
        hair = tuple(c * 0.9 for c in skin)
    shirt = random_colour(rng, gain)
    pants = random_colour(rng, gain)
    long_sleeves = rng.random() < 0.5
    shorts = rng.random() < 0.25
    return dict(
        skin=skin_bgr, hair=_bgr(hair, gain), shirt=shirt, pants=pants,
        sleeve=shirt if long_sleeves else skin_bgr, legwear=skin_bgr if shorts else pants,
        shoes=random_colour(rng, gain) if rng.random() < 0.5 else _bgr((30, 30, 30), gain),
        eyes=_bgr((25, 20, 20)), nose=_bgr(skin, gain * 0.82), mouth=_bgr((140, 40, 40), gain),
        hat=random_colour(rng, gain) if rng.random() < 0.12 else None,
        shirt_mark=("none", "buttons", "emblem", "belt")[int(rng.integers(4))], mark=random_colour(rng, gain))


# ----------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------
_SHIFT = 4
_ONE = 1 << _SHIFT


def _fixed(points) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _darker(colour, k=0.55):
    return tuple(c * k for c in colour)


def draw_polygon(image, polygon, colour, outline: int | None = None):
    pts = _fixed(polygon)
    cv2.fillPoly(image, [pts], colour, cv2.LINE_AA, _SHIFT)
    if outline:
        cv2.polylines(image, [pts], True, _darker(colour), outline, cv2.LINE_AA, _SHIFT)


def draw_part(image, part: Part, outline: int):
    draw_polygon(image, part.polygon, part.colour, outline)
    for kind, pts, colour, size in part.extras:
        if kind == "poly":
            if len(pts) >= 3:
                draw_polygon(image, pts, colour, None)
        elif kind == "dot":
            centre = tuple(int(v) for v in np.round(np.asarray(pts[0]) * _ONE))
            cv2.circle(image, centre, max(1, int(round(size * _ONE))), colour, -1, cv2.LINE_AA, _SHIFT)
        elif kind == "line":
            cv2.polylines(image, [_fixed(pts)], False, colour, max(1, int(round(size))), cv2.LINE_AA, _SHIFT)


def silhouette_box_and_area(parts: list[Part], width: int, height: int) -> tuple[np.ndarray, float]:
    """A figure's painted silhouette (its parts' outlines and the filled shapes drawn on them, e.g. a profile's
    nose) within the image: its tight box (x1, y1, x2, y2), 0-based pixel positions clipped to the image, and
    its area in pixels (occlusion by other figures is not subtracted)."""
    outlines = [part.polygon for part in parts]
    outlines += [pts for part in parts for kind, pts, _, _ in part.extras if kind == "poly" and len(pts) >= 3]
    points = np.concatenate(outlines)
    limit = np.array([width - 1.0, height - 1.0])
    low, high = np.clip(points.min(0), 0.0, limit), np.clip(points.max(0), 0.0, limit)
    origin = np.floor(low)
    columns, rows = (np.floor(high) - origin).astype(int) + 1
    mask = np.zeros((rows, columns), np.uint8)    # only the box: pixels outside the image are not counted
    cv2.fillPoly(mask, [_fixed(outline - origin) for outline in outlines], 1, cv2.LINE_8, _SHIFT)
    return np.concatenate([low, high]), float(np.count_nonzero(mask))


def _stripes(rng, h, w):
    """A stripe pattern in [0, 1] (smooth or hard edged) at random angle and period."""
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(3, 30)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    wave = np.sin((x * math.cos(theta) + y * math.sin(theta)) * np.float32(2 * np.pi / period))
    if rng.random() < 0.5:
        wave = np.sign(wave)
    return 0.5 * (1 + wave)


def _grey_blotches(rng, h, w):
    """Mid-frequency noise in [-1, 1] (one channel)."""
    cell = int(rng.integers(3, 30))
    small = rng.random((max(2, h // cell), max(2, w // cell)), dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) * 2 - 1


def draw_background(rng, h: int, w: int) -> np.ndarray:
    """A cluttered background: colour field, a texture, random shapes and loose limb-like blobs.

    The smooth layers are made at half size and enlarged; shapes are drawn at full size.
    """
    h2, w2 = max(2, (h + 1) // 2), max(2, (w + 1) // 2)
    gh, gw = int(rng.integers(2, 5)), int(rng.integers(2, 6))
    grid = np.array([[random_colour(rng) for _ in range(gw)] for _ in range(gh)], np.float32)
    field = cv2.resize(grid, (w2, h2), interpolation=cv2.INTER_CUBIC)
    kind = int(rng.choice(4))
    if kind == 0:       # stripes / tiles
        c0, c1 = np.array(random_colour(rng), np.float32), np.array(random_colour(rng), np.float32)
        a = np.float32(rng.uniform(0.3, 0.8))
        field = field * (1 - a) + a * (c0 + _stripes(rng, h2, w2)[..., None] * (c1 - c0))
    elif kind == 1:     # blotches
        field += _grey_blotches(rng, h2, w2)[..., None] * np.float32(rng.uniform(20, 70))
    elif kind == 2:     # floor and wall
        horizon = int(h2 * rng.uniform(0.3, 0.8))
        field[horizon:] = 0.35 * field[horizon:] + 0.65 * np.array(random_colour(rng), np.float32)
    if rng.random() < 0.5:  # fine grain
        field += (rng.random((h2, w2), dtype=np.float32)[..., None] - 0.5) * np.float32(rng.uniform(8, 40))
    image = cv2.resize(np.clip(field, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    scale = 0.5 * (h + w)
    for _ in range(int(rng.integers(4, 22))):
        colour = random_colour(rng)
        shape = int(rng.choice(4))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        size = scale * rng.uniform(0.02, 0.25)
        if shape == 0:
            box = cv2.boxPoints(((cx, cy), (size, size * rng.uniform(0.2, 2.5)), rng.uniform(0, 180)))
            draw_polygon(image, box, colour, 1 if rng.random() < 0.5 else None)
        elif shape == 1:
            cv2.ellipse(image, (int(cx), int(cy)), (int(size / 2) + 1, int(size * rng.uniform(0.1, 0.6)) + 1),
                        rng.uniform(0, 180), 0, 360, colour, -1, cv2.LINE_AA)
        elif shape == 2:
            p2 = (cx + rng.normal(0, size * 2), cy + rng.normal(0, size * 2))
            cv2.line(image, (int(cx), int(cy)), (int(p2[0]), int(p2[1])), colour, int(rng.integers(1, 8)), cv2.LINE_AA)
        else:
            n = int(rng.integers(3, 8))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = size * rng.uniform(0.3, 1.0, n)
            draw_polygon(image, np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1), colour)
    # Loose limb-like capsules in skin and clothing colours: a detector of "any capsule" must not suffice.
    for _ in range(int(rng.integers(0, 4))):
        colour = _bgr(_SKIN_RGB[int(rng.integers(len(_SKIN_RGB)))]) if rng.random() < 0.5 else random_colour(rng)
        p0 = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        length = scale * rng.uniform(0.05, 0.25)
        angle = rng.uniform(0, 2 * np.pi)
        p1 = p0 + length * np.array([math.cos(angle), math.sin(angle)])
        r = length * rng.uniform(0.1, 0.25)
        draw_polygon(image, capsule(p0, p1, r, r * rng.uniform(0.6, 1.0)), colour, 1)
    return image


def occluder_polygon(rng, centre, size) -> np.ndarray:
    kind = rng.choice(3)
    cx, cy = centre
    if kind == 0:
        return cv2.boxPoints(((float(cx), float(cy)), (float(size), float(size * rng.uniform(0.4, 1.6))),
                              float(rng.uniform(0, 180)))).astype(np.float64)
    if kind == 1:
        pts = cv2.ellipse2Poly((int(cx * 16), int(cy * 16)),
                               (int(size * 8) + 1, int(size * 8 * rng.uniform(0.4, 1.0)) + 1),
                               int(rng.uniform(0, 180)), 0, 360, 15)
        return pts.astype(np.float64) / 16
    n = int(rng.integers(4, 8))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = 0.5 * size * rng.uniform(0.6, 1.1, n)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)


def finish_image(rng, image) -> np.ndarray:
    """Camera effects: exposure, slight blur, sensor noise."""
    image = cv2.convertScaleAbs(image, alpha=float(rng.uniform(0.8, 1.15)), beta=float(rng.uniform(-20, 20)))
    if rng.random() < 0.35:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.5, 1.4)))
    amplitude = int(rng.integers(3, 13))       # uniform noise of +-amplitude (sd = amplitude / sqrt 3)
    noise = rng.integers(0, 2 * amplitude + 1, size=image.shape, dtype=np.uint8)
    return cv2.subtract(cv2.add(image, noise), (amplitude, amplitude, amplitude, 0))


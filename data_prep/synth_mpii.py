"""Procedural MPII-format data set: articulated figures on textured backgrounds, in MPII's own files.

The project's embedded default data set (MPII images cannot be downloaded everywhere). Each image holds
1-3 figures posed by a small 3D kinematic model of the 16 MPII joints, seen from any side and projected
orthographically, then drawn as tapered capsules (limbs), a hull (torso) and an ellipsoid head with a face.
Left and right limbs always share colours: which arm is the right one can only be told from where the
figure faces (face, nose, collar, feet), as on real photos.

Output (`--output_dir D`):
  D/images/*.jpg          the images
  D/annotations.json      one record per person in the schema of mpii_annotations.json (1-based pixels,
                          floats written with 3 decimals like the real file) plus `headbox` [[x1,y1],[x2,y2]]
  D/gt_val.mat            the validation people in the layout of detections_our_format.mat

`--from_annotations FILE` renders figures at the real poses, centres and scales of an MPII annotation
file instead (same image names and sizes, records copied, `headbox` added).

    python -m data_prep.synth_mpii --output_dir /tmp/synth --num_train 2000 --num_val 400 --seed 0
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gzip
import io
import json
import math
import multiprocessing
import os
import time
from pathlib import Path

import cv2
import numpy as np
import scipy.io
from absl import app, flags

from kpt_tf.joints import MPII_SHORT_NAMES, NUM_JOINTS
from kpt_tf.mpii_io import to_one_based

(R_ANK, R_KNE, R_HIP, L_HIP, L_KNE, L_ANK, PELVIS, THORAX, NECK, HEAD_TOP,
 R_WRI, R_ELB, R_SHO, L_SHO, L_ELB, L_WRI) = range(NUM_JOINTS)

# Keys of a record of mpii_annotations.json, in the file's order; `headbox` is our addition.
MPII_RECORD_KEYS = (
    "dataset", "isValidation", "img_paths", "img_width", "img_height", "objpos", "joint_self",
    "scale_provided", "joint_others", "scale_provided_other", "objpos_other", "annolist_index",
    "people_index", "numOtherPeople")
RECORD_KEYS = MPII_RECORD_KEYS + ("headbox",)
# How the real file stores "no other people" (a MATLAB empty matrix exported by a json toolbox).
_MATLAB_EMPTY = {"_ArrayType_": "double", "_ArraySize_": [0, 0], "_ArrayData_": None}
DATASET_NAME = "synth_mpii"
JPEG_QUALITY = 90
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
# Rotations. Person frame: x = the person's left, y = up, z = forward (where the person faces).
# Camera frame after yaw: x -> image right, y -> image up, z -> towards the camera.
# ----------------------------------------------------------------------------------------------
def _rx(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


_DOWN = np.array([0.0, -1.0, 0.0])
# MPII's upper neck is below the chin: the skull fills the top of the neck -> head-top segment.
HEAD_CENTRE_AT, HEAD_HALF_HEIGHT = 0.58, 0.42       # fractions of that segment
NECK_INTO_HEAD = 0.3
_FORWARD = np.array([0.0, 0.0, 1.0])
_RAD = math.pi / 180.0


# ----------------------------------------------------------------------------------------------
# Kinematic model
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Body:
    """Segment lengths and limb diameters in body heights (ankle to head top is about 1)."""

    hip_half: float = 0.085
    thigh: float = 0.245
    shin: float = 0.235
    spine: float = 0.29       # pelvis -> thorax
    neck: float = 0.04        # thorax -> upper neck
    head_len: float = 0.165   # upper neck -> head top (MPII: 200 * scale / 6)
    head_width: float = 0.105
    head_depth: float = 0.125
    sho_half: float = 0.10
    sho_drop: float = 0.015   # shoulders sit slightly below the thorax point
    upper_arm: float = 0.165
    forearm: float = 0.145
    hand: float = 0.07
    foot: float = 0.1
    girth: float = 1.0        # torso width multiplier
    limb: float = 1.0         # limb thickness multiplier


def sample_body(rng) -> Body:
    """Per-person proportions: global build plus independent +-6% per segment."""
    base = Body()
    jitter = lambda v, sd=0.06: v * min(1.15, max(0.85, float(rng.normal(1.0, sd))))
    legs = min(1.12, max(0.88, float(rng.normal(1.0, 0.05))))
    return Body(
        hip_half=jitter(base.hip_half), thigh=jitter(base.thigh) * legs, shin=jitter(base.shin) * legs,
        spine=jitter(base.spine, 0.04), neck=jitter(base.neck, 0.1), head_len=jitter(base.head_len, 0.04),
        head_width=jitter(base.head_width, 0.05), head_depth=jitter(base.head_depth, 0.05),
        sho_half=jitter(base.sho_half), sho_drop=base.sho_drop, upper_arm=jitter(base.upper_arm),
        forearm=jitter(base.forearm), hand=jitter(base.hand), foot=jitter(base.foot),
        girth=float(rng.uniform(0.85, 1.2)), limb=float(rng.uniform(0.8, 1.25)))


# Arm modes: (name, probability, elevation, azimuth, elbow flexion, humeral rotation mean/sd), degrees.
# Elevation lifts the arm from hanging (0) to straight up (180); azimuth 0 = sideways, 90 = forward,
# > 90 = across the body; humeral rotation turns the elbow's bending plane (positive: hand goes medially).
ARM_MODES = (
    ("hang", 0.28, (0, 25), (-20, 100), (0, 40), (0, 30)),
    ("bent_front", 0.18, (10, 60), (60, 110), (60, 130), (20, 30)),
    ("raised", 0.13, (100, 175), (-10, 100), (0, 90), (0, 40)),
    ("sideways", 0.10, (60, 110), (-20, 60), (0, 120), (-30, 45)),
    ("crossed", 0.08, (10, 50), (100, 150), (80, 140), (70, 15)),
    ("on_hip", 0.06, (25, 50), (-30, 10), (90, 130), (90, 10)),
    ("random", 0.17, (0, 180), (-40, 150), (0, 150), (15, 60)),
)
# Leg modes (whole person): standing, walking/running, sitting, kneeling, squatting, one leg raised, random.
LEG_MODES = ("stand", "walk", "sit", "kneel", "squat", "leg_up", "random")
LEG_MODE_WEIGHTS = (0.32, 0.2, 0.12, 0.06, 0.06, 0.08, 0.16)


def _uniform(rng, lo_hi):
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _sample_arm(rng, mode_index=None):
    if mode_index is None:
        mode_index = int(rng.choice(len(ARM_MODES), p=[m[1] for m in ARM_MODES]))
    _, _, elev, azim, elbow, (psi_mean, psi_sd) = ARM_MODES[mode_index]
    return mode_index, dict(elev=_uniform(rng, elev), azim=_uniform(rng, azim), elbow=_uniform(rng, elbow),
                            psi=float(rng.normal(psi_mean, psi_sd)), wrist=float(rng.normal(0, 15)))


def _sample_legs(rng, mode):
    """(hip flexion, abduction, knee flexion, foot flexion) per side (right, left) and a torso lean."""
    def leg(h, b, k):
        return dict(flex=h, abd=b, knee=k, foot=float(rng.normal(0, 12)))
    lean = float(rng.normal(4, 7))
    if mode == "stand":
        legs = [leg(rng.normal(0, 5), rng.uniform(0, 12), rng.uniform(0, 12)) for _ in range(2)]
    elif mode == "walk":
        run = rng.random() < 0.4
        front = leg(rng.uniform(10, 50 if run else 35), rng.uniform(0, 8), rng.uniform(5, 70 if run else 30))
        back = leg(rng.uniform(-35, -5), rng.uniform(0, 8), rng.uniform(0, 110 if run else 50))
        legs = [front, back] if rng.random() < 0.5 else [back, front]
        lean = float(rng.normal(12 if run else 5, 6))
    elif mode == "sit":
        legs = [leg(rng.uniform(65, 105), rng.uniform(0, 25), rng.uniform(60, 115)) for _ in range(2)]
        lean = float(rng.normal(5, 12))
    elif mode == "kneel":
        both = rng.random() < 0.5
        legs = [leg(rng.uniform(-10, 20), rng.uniform(0, 15), rng.uniform(80, 125)),
                leg(rng.uniform(-10, 20), rng.uniform(0, 15), rng.uniform(80, 125)) if both
                else leg(rng.uniform(60, 100), rng.uniform(0, 15), rng.uniform(70, 110))]
        if rng.random() < 0.5:
            legs.reverse()
    elif mode == "squat":
        legs = [leg(rng.uniform(80, 125), rng.uniform(5, 35), rng.uniform(100, 145)) for _ in range(2)]
        lean = float(rng.uniform(15, 50))
    elif mode == "leg_up":
        legs = [leg(rng.uniform(40, 110), rng.uniform(0, 40), rng.uniform(0, 100)),
                leg(rng.normal(0, 6), rng.uniform(0, 10), rng.uniform(0, 15))]
        if rng.random() < 0.5:
            legs.reverse()
    else:
        legs = [leg(rng.uniform(-30, 110), rng.uniform(0, 45), rng.uniform(0, 140)) for _ in range(2)]
        lean = float(rng.normal(5, 20))
    return legs, lean


def sample_pose(rng) -> dict:
    """Joint angles (degrees) of one figure; left and right sides are sampled independently."""
    leg_mode = LEG_MODES[int(rng.choice(len(LEG_MODES), p=LEG_MODE_WEIGHTS))]
    legs, lean = _sample_legs(rng, leg_mode)
    right_mode, right_arm = _sample_arm(rng)
    # People often do the same thing with both arms (crossed arms, both up, hands on hips).
    left_mode, left_arm = _sample_arm(rng, right_mode if rng.random() < 0.35 else None)
    if leg_mode == "stand" and rng.random() < 0.12:      # bending over: arms hang towards the ground
        lean = float(rng.uniform(30, 80))
        for mode, arm in ((right_mode, right_arm), (left_mode, left_arm)):
            if ARM_MODES[mode][0] == "hang" or rng.random() < 0.5:
                arm.update(elev=lean + float(rng.normal(0, 15)), azim=float(rng.uniform(70, 100)))
    return dict(
        legs=legs, arms=[right_arm, left_arm], lean=lean, side_bend=float(rng.normal(0, 6)),
        twist=float(rng.normal(0, 12)),
        head_yaw=float(np.clip(rng.normal(0, 30), -80, 80)), head_pitch=float(np.clip(rng.normal(5, 12), -35, 40)),
        head_roll=float(rng.normal(0, 8)), leg_mode=leg_mode)


def rest_pose() -> dict:
    """Standing, arms hanging slightly apart: the template for inferring unannotated joints."""
    leg = dict(flex=0.0, abd=4.0, knee=0.0, foot=0.0)
    arm = dict(elev=12.0, azim=20.0, elbow=10.0, psi=0.0, wrist=0.0)
    return dict(legs=[dict(leg), dict(leg)], arms=[dict(arm), dict(arm)], lean=0.0, side_bend=0.0, twist=0.0,
                head_yaw=0.0, head_pitch=0.0, head_roll=0.0, leg_mode="stand")


@dataclasses.dataclass
class Skeleton3D:
    joints: np.ndarray        # (16, 3) person frame, pelvis at the origin, body-height units
    hand_tips: np.ndarray     # (2, 3) right, left
    toes: np.ndarray          # (2, 3) right, left
    torso_rotation: np.ndarray
    head_rotation: np.ndarray
    head_centre: np.ndarray


def skeleton_3d(body: Body, pose: dict) -> Skeleton3D:
    """Forward kinematics of the 16 MPII joints plus hand tips and toes."""
    joints = np.zeros((NUM_JOINTS, 3))
    torso = _rx(pose["lean"] * _RAD) @ _rz(pose["side_bend"] * _RAD) @ _ry(pose["twist"] * _RAD)
    thorax_local = np.array([0.0, body.spine, 0.0])
    joints[THORAX] = torso @ thorax_local
    joints[NECK] = torso @ (thorax_local + [0.0, body.neck, 0.01])
    head = torso @ _ry(pose["head_yaw"] * _RAD) @ _rx(pose["head_pitch"] * _RAD) @ _rz(pose["head_roll"] * _RAD)
    joints[HEAD_TOP] = joints[NECK] + head @ [0.0, body.head_len, 0.0]
    head_centre = joints[NECK] + head @ [0.0, HEAD_CENTRE_AT * body.head_len, 0.0]

    hand_tips, toes = np.zeros((2, 3)), np.zeros((2, 3))
    for side, (sgn, sho, elb, wri, hip, kne, ank) in enumerate((
            (-1.0, R_SHO, R_ELB, R_WRI, R_HIP, R_KNE, R_ANK), (1.0, L_SHO, L_ELB, L_WRI, L_HIP, L_KNE, L_ANK))):
        arm = pose["arms"][side]
        # Shoulder rotation: abduct by the elevation, swing forward by the azimuth; the humeral rotation
        # (about the hanging arm's own axis) sets the plane the elbow bends in.
        shoulder = _ry(-sgn * arm["azim"] * _RAD) @ _rz(sgn * arm["elev"] * _RAD)
        upper_dir = shoulder @ _DOWN
        bend_dir = shoulder @ _ry(-sgn * arm["psi"] * _RAD) @ _FORWARD
        f = arm["elbow"] * _RAD
        fore_dir = math.cos(f) * upper_dir + math.sin(f) * bend_dir
        w = arm["wrist"] * _RAD
        hand_dir = math.cos(w) * fore_dir + math.sin(w) * bend_dir
        sho_local = np.array([sgn * body.sho_half, body.spine - body.sho_drop, -0.01])
        joints[sho] = torso @ sho_local
        joints[elb] = joints[sho] + torso @ (upper_dir * body.upper_arm)
        joints[wri] = joints[elb] + torso @ (fore_dir * body.forearm)
        hand_tips[side] = joints[wri] + torso @ (hand_dir * body.hand)

        leg = pose["legs"][side]
        abduct = _rz(sgn * leg["abd"] * _RAD)
        thigh_dir = abduct @ _rx(-leg["flex"] * _RAD) @ _DOWN
        shin_rot = abduct @ _rx(-(leg["flex"] - leg["knee"]) * _RAD)
        shin_dir = shin_rot @ _DOWN
        # The foot is perpendicular to the shin, pointing forward, turned out a little.
        foot_dir = shin_rot @ _rx(-leg["foot"] * _RAD) @ _ry(sgn * 12 * _RAD) @ np.array([0.0, -0.25, 1.0])
        foot_dir /= np.linalg.norm(foot_dir)
        joints[hip] = [sgn * body.hip_half, -0.03, 0.0]
        joints[kne] = joints[hip] + thigh_dir * body.thigh
        joints[ank] = joints[kne] + shin_dir * body.shin
        toes[side] = joints[ank] + foot_dir * body.foot
    return Skeleton3D(joints, hand_tips, toes, torso, head, head_centre)


def torso_rings(body: Body) -> list[tuple[float, float, float, bool]]:
    """Cross-sections of the torso: (height, half width, half depth, follows the upper body)."""
    g = body.girth
    return [(-0.06, (body.hip_half + 0.05) * g, 0.075 * g, False),
            (0.06, (body.hip_half + 0.03) * g, 0.068 * g, False),
            (0.16, 0.1 * g, 0.066 * g, True),
            (0.24, (body.sho_half + 0.005) * g, 0.07 * g, True),
            (body.spine - 0.005, (body.sho_half + 0.02) * min(g, 1.1), 0.055 * g, True)]


_RING_ANGLES = np.linspace(0, 2 * np.pi, 12, endpoint=False)


def torso_points(body: Body, torso_rotation: np.ndarray) -> np.ndarray:
    """Points on the torso surface (person frame): the silhouette is their projected hull."""
    pts = []
    for y, hw, hd, upper in torso_rings(body):
        ring = np.stack([hw * np.cos(_RING_ANGLES), np.full(_RING_ANGLES.shape, y), hd * np.sin(_RING_ANGLES)], 1)
        pts.append(ring @ torso_rotation.T if upper else ring)
    return np.concatenate(pts)


# ----------------------------------------------------------------------------------------------
# Projection and 2D frames
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Frame2D:
    """Affine map of local 3D points (body-height units) into the image, plus camera depth."""

    origin: np.ndarray   # (2,) image point of the local origin
    matrix: np.ndarray   # (2, 3) local -> image offset
    depth: np.ndarray    # (3,) local direction -> depth towards the camera (unit rotation row)

    def project(self, points) -> np.ndarray:
        return self.origin + np.asarray(points, np.float64) @ self.matrix.T

    def facing(self, normals) -> np.ndarray:
        return np.asarray(normals, np.float64) @ self.depth


@dataclasses.dataclass
class View:
    """How a figure is seen: body yaw, camera pitch, in-plane roll, size and pelvis position."""

    yaw: float
    cam_pitch: float
    roll: float
    height_px: float
    pelvis: np.ndarray

    def camera(self) -> np.ndarray:
        return _rx(self.cam_pitch * _RAD) @ _ry(self.yaw * _RAD)

    def image_matrix(self) -> np.ndarray:
        """(2, 3): person frame -> image offset from the pelvis."""
        c, s = math.cos(self.roll * _RAD), math.sin(self.roll * _RAD)
        roll = np.array([[c, -s], [s, c]])
        flip_y = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
        return self.height_px * roll @ flip_y @ self.camera()

    def frame(self, origin3d=np.zeros(3), rotation=np.eye(3)) -> Frame2D:
        m = self.image_matrix()
        return Frame2D(self.pelvis + m @ origin3d, m @ rotation, (self.camera() @ rotation)[2])


def sample_view(rng, height_px: float) -> View:
    u = rng.random()
    if u < 0.45:
        yaw = rng.normal(0, 25)            # facing the camera
    elif u < 0.65:
        yaw = 180 + rng.normal(0, 25)      # back to the camera
    else:
        yaw = rng.uniform(-180, 180)       # any side, profiles included
    u = rng.random()
    if u < 0.8:
        roll = rng.normal(0, 7)            # upright
    elif u < 0.96:
        roll = rng.uniform(-70, 70)        # strongly tilted (lying, leaning, tumbling)
    else:
        roll = rng.uniform(-180, 180)      # anything, upside down included
    return View(float(yaw), float(np.clip(rng.normal(0, 7), -20, 20)), float(roll), float(height_px), np.zeros(2))


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


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / max(float(np.linalg.norm(v)), 1e-9)


def head_part(frame: Frame2D, radii, palette: dict, depth: float, person: int) -> Part:
    """Head: hair-coloured ellipsoid, skin face on its front side with eyes, nose and mouth.

    The face is what tells the figure's facing direction (and so its left from its right).
    """
    radii = np.asarray(radii, np.float64)
    silhouette = hull(frame.project(_SPHERE * radii))
    extras = []

    def surface(direction):
        d = _unit(direction)
        point = d * radii
        normal = _unit(d / radii)
        return point, float(frame.facing(normal))

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
    for sx in (-1.0, 1.0):
        point, facing = surface([sx * 0.4, 0.12, 0.9])
        if facing > 0.15:
            extras.append(("dot", frame.project(point[None])[0:1], palette["eyes"], eye_size * frame_scale(frame)))
    _, facing = surface([0.0, -0.1, 1.0])
    if facing > -0.4:                 # the nose sticks out of a profile's silhouette
        nose = np.array([[-0.2 * rx, -0.3 * ry, 0.92 * rz], [0.0, 0.12 * ry, 0.98 * rz],
                         [0.2 * rx, -0.3 * ry, 0.92 * rz], [0.0, -0.22 * ry, 1.28 * rz]])
        extras.append(("poly", hull(frame.project(nose)), palette["nose"], 0))
    _, facing = surface([0.0, -0.55, 0.83])
    if facing > 0.1:
        mouth = np.array([[-0.3 * rx, -0.56 * ry, 0.8 * rz], [0.3 * rx, -0.56 * ry, 0.8 * rz]])
        extras.append(("line", frame.project(mouth), palette["mouth"], max(1.0, 0.05 * rx * frame_scale(frame))))
    return Part(silhouette, palette["hair"], depth, frozenset((NECK, HEAD_TOP)), person, extras)


def frame_scale(frame: Frame2D) -> float:
    """Pixels per body-height unit of a frame (its largest singular value)."""
    return float(np.linalg.svd(frame.matrix, compute_uv=False).max())


def torso_decorations(frame: Frame2D, body: Body, palette: dict) -> list:
    """Front-only marks (collar, buttons or emblem): midline, so they tell front from back, not sides."""
    if frame.facing(_FORWARD) < 0.12:
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
_LIMBS = (
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


def figure_parts_3d(body: Body, pose: dict, view: View, palette: dict, person: int):
    """Drawable parts of a posed figure and its 16 joints in image pixels (0-based)."""
    skel = skeleton_3d(body, pose)
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
    for name, a, b, own, colour_key, wa, wb, bias in _LIMBS:
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
    head_frame = view.frame(skel.head_centre, skel.head_rotation)
    radii = (0.5 * body.head_width, HEAD_HALF_HEIGHT * body.head_len, 0.5 * body.head_depth)
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


def _random_colour(rng, gain=1.0):
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
    shirt = _random_colour(rng, gain)
    pants = _random_colour(rng, gain)
    long_sleeves = rng.random() < 0.5
    shorts = rng.random() < 0.25
    return dict(
        skin=skin_bgr, hair=_bgr(hair, gain), shirt=shirt, pants=pants,
        sleeve=shirt if long_sleeves else skin_bgr, legwear=skin_bgr if shorts else pants,
        shoes=_random_colour(rng, gain) if rng.random() < 0.5 else _bgr((30, 30, 30), gain),
        eyes=_bgr((25, 20, 20)), nose=_bgr(skin, gain * 0.82), mouth=_bgr((140, 40, 40), gain),
        hat=_random_colour(rng, gain) if rng.random() < 0.12 else None,
        shirt_mark=("none", "buttons", "emblem", "belt")[int(rng.integers(4))], mark=_random_colour(rng, gain))


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
    grid = np.array([[_random_colour(rng) for _ in range(gw)] for _ in range(gh)], np.float32)
    field = cv2.resize(grid, (w2, h2), interpolation=cv2.INTER_CUBIC)
    kind = int(rng.choice(4))
    if kind == 0:       # stripes / tiles
        c0, c1 = np.array(_random_colour(rng), np.float32), np.array(_random_colour(rng), np.float32)
        a = np.float32(rng.uniform(0.3, 0.8))
        field = field * (1 - a) + a * (c0 + _stripes(rng, h2, w2)[..., None] * (c1 - c0))
    elif kind == 1:     # blotches
        field += _grey_blotches(rng, h2, w2)[..., None] * np.float32(rng.uniform(20, 70))
    elif kind == 2:     # floor and wall
        horizon = int(h2 * rng.uniform(0.3, 0.8))
        field[horizon:] = 0.35 * field[horizon:] + 0.65 * np.array(_random_colour(rng), np.float32)
    if rng.random() < 0.5:  # fine grain
        field += (rng.random((h2, w2), dtype=np.float32)[..., None] - 0.5) * np.float32(rng.uniform(8, 40))
    image = cv2.resize(np.clip(field, 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR)
    scale = 0.5 * (h + w)
    for _ in range(int(rng.integers(4, 22))):
        colour = _random_colour(rng)
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
        colour = _bgr(_SKIN_RGB[int(rng.integers(len(_SKIN_RGB)))]) if rng.random() < 0.5 else _random_colour(rng)
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


# ----------------------------------------------------------------------------------------------
# Visibility
# ----------------------------------------------------------------------------------------------
def visibility(parts_in_draw_order: list[Part], person: int, joints2d, annotated) -> np.ndarray:
    """is_visible per joint: the topmost drawn shape covering the joint must be one of its own parts."""
    visible = np.zeros(NUM_JOINTS, bool)
    boxes = [(p.polygon.min(0), p.polygon.max(0)) for p in parts_in_draw_order]
    contours = [p.polygon.astype(np.float32).reshape(-1, 1, 2) for p in parts_in_draw_order]
    for j in np.flatnonzero(annotated):
        x, y = float(joints2d[j, 0]), float(joints2d[j, 1])
        visible[j] = True
        for k in range(len(parts_in_draw_order) - 1, -1, -1):
            lo, hi = boxes[k]
            if x < lo[0] or y < lo[1] or x > hi[0] or y > hi[1]:
                continue
            if cv2.pointPolygonTest(contours[k], (x, y), False) >= 0:
                part = parts_in_draw_order[k]
                visible[j] = part.person == person and j in part.own
                break
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


def joint_self(joints2d, annotated, visible) -> list:
    """[[x, y, is_visible]] x 16 in 1-based pixels, [0, 0, 0] when not annotated."""
    out = []
    for j in range(NUM_JOINTS):
        if annotated[j]:
            x, y = to_one_based(joints2d[j])
            out.append([round(float(x), 3), round(float(y), 3), 1.0 if visible[j] else 0.0])
        else:
            out.append([0.0, 0.0, 0.0])
    return out


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
    image), `annotated`, `visible` (16,) bools, `objpos` (2,), `scale`, `headbox` (2, 2) 0-based.
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
        parts, joints2d = figure_parts_3d(body, pose, view, palette, i)
        figures.append(dict(body=body, view=view, parts=parts, joints=joints2d))
    # Painter's order: smaller (farther) people first, each person's parts far to near.
    drawn: list[Part] = []
    for i in sorted(range(num_people), key=lambda k: figures[k]["view"].height_px):
        outline = max(1, int(round(figures[i]["view"].height_px * 0.004)))
        for part in sorted(figures[i]["parts"], key=lambda p: p.depth):
            draw_part(image, part, outline)
            drawn.append(part)
    # Occluders: objects in front of a joint, or a table/bar across the legs.
    for i, fig in enumerate(figures):
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
            occluder = Part(poly, _random_colour(rng), 0.0)
            draw_part(image, occluder, max(1, int(round(hp * 0.004))))
            drawn.append(occluder)
    people = []
    for i, fig in enumerate(figures):
        j2d = fig["joints"]
        annotated = joints_inside(j2d, width, height)
        visible = visibility(drawn, i, j2d, annotated)
        hp = fig["view"].height_px
        # MPII semantics: objpos is a rough centre (between pelvis and thorax, nearer the pelvis);
        # scale * 200 px is the person height, MPII derives it from the head (segment = 200 s / 6).
        objpos = j2d[PELVIS] + 0.3 * (j2d[THORAX] - j2d[PELVIS]) + rng.normal(0, 0.02 * hp, 2)
        scale = HEAD_SEGMENTS_PER_BODY * fig["body"].head_len * hp / 200.0
        people.append(dict(joints=j2d, annotated=annotated, visible=visible & annotated,
                           objpos=np.round(objpos), scale=round(scale, 3),
                           headbox=head_box(j2d[NECK], j2d[HEAD_TOP])))
    finished = finish_image(rng, image)
    if return_layers:
        return finished, people, background, image
    return finished, people


# ----------------------------------------------------------------------------------------------
# Figures at given 2D poses (--from_annotations)
# ----------------------------------------------------------------------------------------------
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
    for name, a, b, own, colour_key, wa, wb, bias in _LIMBS:
        pa = j[a]
        if isinstance(b, int):
            pb = j[b]
        elif b.startswith("tip"):
            wri, elb = (R_WRI, R_ELB) if b.endswith("R") else (L_WRI, L_ELB)
            pb = j[wri] + _unit(j[wri] - j[elb]) * body.hand * height_px
        else:
            ank, kne = (R_ANK, R_KNE) if b.endswith("R") else (L_ANK, L_KNE)
            shin = _unit(j[ank] - j[kne])
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
    """Draw figures at the given poses; `people`: dicts with joint_self (16,3, 1-based), scale, objpos."""
    image = draw_background(rng, height, width)
    order = sorted(range(len(people)), key=lambda k: people[k]["scale"])
    drawn = []
    for i in order:
        p = people[i]
        js = np.asarray(p["joint_self"], np.float64).reshape(NUM_JOINTS, 3)
        annotated = ~((js[:, 0] == 0) & (js[:, 1] == 0))
        visible = annotated & (js[:, 2] > 0)
        joints0 = js[:, :2] - 1.0
        objpos0 = np.asarray(p["objpos"], np.float64) - 1.0
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
                            _random_colour(rng), 0.0)
            draw_part(image, occluder, outline)
    return finish_image(rng, image)


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------
def encode_json(value) -> str:
    """JSON in the real file's style: numbers as %.3f (ints only where the file has ints), no spaces."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}: {encode_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ",".join(encode_json(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        text = f"{float(value):.3f}"
        return "0.000" if text == "-0.000" else text
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"cannot encode {type(value).__name__} in annotations.json")


def write_annotations(path: Path, records: list[dict]):
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text("[" + ",".join(encode_json(r) for r in records) + "]")
    os.replace(tmp, path)


def write_gt_mat(path: Path, records: list[dict]):
    """Validation ground truth in the layout of detections_our_format.mat (1-based, MATLAB order)."""
    n = len(records)
    pos = np.zeros((NUM_JOINTS, 2, n))
    missing = np.zeros((NUM_JOINTS, n), np.uint8)
    boxes = np.zeros((2, 2, n))
    for i, r in enumerate(records):
        js = np.asarray(r["joint_self"], np.float64).reshape(NUM_JOINTS, 3)
        absent = (js[:, 0] == 0) & (js[:, 1] == 0)
        pos[:, :, i] = np.where(absent[:, None], 0.0, js[:, :2])
        missing[:, i] = absent
        boxes[:, :, i] = np.asarray(r["headbox"], np.float64)
    names = np.empty((1, NUM_JOINTS), dtype=object)
    for k, short in enumerate(MPII_SHORT_NAMES):
        names[0, k] = np.array([short])
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"pos_gt_src": pos, "jnt_missing": missing, "headboxes_src": boxes,
                              "dataset_joints": names})
    data = bytearray(buffer.getvalue())
    # The 116-byte text header carries a creation time; a fixed one keeps equal seeds byte-identical.
    header = b"MATLAB 5.0 MAT-file, written by kpt_tf data_prep.synth_mpii"
    data[:116] = header.ljust(116, b" ")
    tmp = path.with_suffix(".mat.tmp")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)


def _others_fields(people_rows: list[dict], index: int):
    """joint_others, scale_provided_other, objpos_other as the real file stores them."""
    others = [p for k, p in enumerate(people_rows) if k != index]
    if not others:
        return dict(_MATLAB_EMPTY), dict(_MATLAB_EMPTY), dict(_MATLAB_EMPTY)
    if len(others) == 1:
        o = others[0]
        return o["joint_self"], o["scale_provided"], o["objpos"]
    return ([o["joint_self"] for o in others], [o["scale_provided"] for o in others],
            [o["objpos"] for o in others])


def _write_jpeg(path: Path, image):
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())


def _synthetic_task(task):
    index, num_people, seed, images_dir = task
    rng = np.random.default_rng([seed, index])
    image, people = render_synthetic_image(rng, num_people)
    name = f"synth_{index:06d}.jpg"
    _write_jpeg(Path(images_dir) / name, image)
    rows = [dict(joint_self=joint_self(p["joints"], p["annotated"], p["visible"]),
                 objpos=[float(v) for v in to_one_based(p["objpos"])],
                 scale_provided=float(p["scale"]),
                 headbox=np.round(to_one_based(p["headbox"]), 3).tolist()) for p in people]
    return name, image.shape[1], image.shape[0], rows


def _annotated_task(task):
    index, name, width, height, people, seed, images_dir = task
    rng = np.random.default_rng([seed, index])
    image = render_annotated_image(rng, width, height, people)
    _write_jpeg(Path(images_dir) / name, image)
    return name


def _worker_init():
    cv2.setNumThreads(1)


def _run_tasks(fn, tasks, num_workers):
    """Map `fn` over tasks in order, in worker processes when more than one is asked for."""
    workers = (os.cpu_count() or 1) if num_workers is None else int(num_workers)
    workers = max(1, min(workers, len(tasks)))
    if workers == 1:
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            return [fn(t) for t in tasks]
        finally:
            cv2.setNumThreads(threads)
    # fork: workers need not re-import __main__ (which spawn does, and cannot for `python -c`/stdin/
    # notebooks) and start at once. They only run numpy and OpenCV, never TensorFlow, so forking a
    # process that has TF threads is safe here. A worker that dies raises instead of hanging.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    chunk = max(1, min(8, len(tasks) // (4 * workers)))
    with concurrent.futures.ProcessPoolExecutor(workers, multiprocessing.get_context(method),
                                                initializer=_worker_init) as pool:
        return list(pool.map(fn, tasks, chunksize=chunk))


def _check_count(name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _prepare_output(output_dir) -> Path:
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir {out} exists and is not a directory")
    (out / "images").mkdir(parents=True, exist_ok=True)
    return out


def generate(output_dir, num_train: int, num_val: int, seed: int = 0, num_workers: int | None = None) -> dict:
    """Write a synthetic MPII-format data set; returns a summary (people, images, seconds, paths)."""
    _check_count("num_train", num_train)
    _check_count("num_val", num_val)
    _check_count("seed", seed)
    if num_workers is not None:
        _check_count("num_workers", num_workers, 1)
    if num_train + num_val == 0:
        raise ValueError("num_train + num_val must be at least 1")
    start = time.perf_counter()
    out = _prepare_output(output_dir)
    plan_rng = np.random.default_rng(seed)
    plan = []                         # (people in the image, is validation)
    for is_val, total in ((0.0, num_train), (1.0, num_val)):
        left = total
        while left > 0:
            k = min(left, int(plan_rng.choice(PEOPLE_PER_IMAGE, p=PEOPLE_PER_IMAGE_WEIGHTS)))
            plan.append((k, is_val))
            left -= k
    tasks = [(i, k, int(seed), str(out / "images")) for i, (k, _) in enumerate(plan)]
    results = _run_tasks(_synthetic_task, tasks, num_workers)
    records = []
    for image_index, ((name, width, height, rows), (_, is_val)) in enumerate(zip(results, plan)):
        for p, row in enumerate(rows):
            others = _others_fields(rows, p)
            records.append({
                "dataset": DATASET_NAME, "isValidation": is_val, "img_paths": name, "img_width": float(width),
                "img_height": float(height), "objpos": row["objpos"], "joint_self": row["joint_self"],
                "scale_provided": row["scale_provided"], "joint_others": others[0],
                "scale_provided_other": others[1], "objpos_other": others[2],
                "annolist_index": float(image_index + 1), "people_index": float(p + 1),
                "numOtherPeople": float(len(rows) - 1), "headbox": row["headbox"]})
    write_annotations(out / "annotations.json", records)
    write_gt_mat(out / "gt_val.mat", [r for r in records if r["isValidation"] == 1.0])
    seconds = time.perf_counter() - start
    return dict(people=len(records), train=num_train, val=num_val, images=len(plan), seconds=seconds,
                people_per_second=len(records) / max(seconds, 1e-9), output_dir=str(out))


def load_annotations(path) -> list[dict]:
    """Records of an mpii_annotations-style file (.json or .json.gz), checked for the keys we use."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotations file {path} not found")
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as f:
            records = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"annotations file {path} is not readable JSON: {e}") from None
    if not isinstance(records, list) or not records:
        raise ValueError(f"annotations file {path} must hold a non-empty JSON list of person records")
    needed = ("isValidation", "img_paths", "img_width", "img_height", "objpos", "joint_self", "scale_provided")
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise ValueError(f"annotations file {path}: record {i} is not an object")
        missing = [k for k in needed if k not in r]
        if missing:
            raise ValueError(f"annotations file {path}: record {i} lacks {', '.join(missing)}")
        if np.asarray(r["joint_self"]).shape != (NUM_JOINTS, 3):
            raise ValueError(f"annotations file {path}: record {i} joint_self is not 16 x [x, y, visible]")
        name = str(r["img_paths"])
        if os.path.isabs(name) or ".." in Path(name).parts or not name:
            raise ValueError(f"annotations file {path}: record {i} has an unsafe image path {name!r}")
        try:
            size_ok = float(r["img_width"]) >= 1 and float(r["img_height"]) >= 1 and float(r["scale_provided"]) > 0
        except (TypeError, ValueError):
            size_ok = False
        if not size_ok:
            raise ValueError(f"annotations file {path}: record {i} has image size {r['img_width']!r} x "
                             f"{r['img_height']!r} or scale {r['scale_provided']!r} that is not a positive number")
    return records


def render_from_annotations(annotations_path, output_dir, max_people: int | None = None, seed: int = 0,
                            num_workers: int | None = None) -> dict:
    """Render figures at the poses of a real annotation file (every person of each used image)."""
    if max_people is not None:
        _check_count("max_people", max_people, 1)
    _check_count("seed", seed)
    if num_workers is not None:
        _check_count("num_workers", num_workers, 1)
    start = time.perf_counter()
    records = load_annotations(annotations_path)
    out = _prepare_output(output_dir)
    selected = records if max_people is None else records[:max_people]
    by_image: dict[str, list[dict]] = {}
    for r in records:
        by_image.setdefault(r["img_paths"], []).append(r)
    names = list(dict.fromkeys(r["img_paths"] for r in selected))
    tasks = []
    for index, name in enumerate(names):
        group = by_image[name]
        people = [dict(joint_self=r["joint_self"], scale=r["scale_provided"], objpos=r["objpos"]) for r in group]
        tasks.append((index, name, int(round(group[0]["img_width"])), int(round(group[0]["img_height"])), people,
                      int(seed), str(out / "images")))
    _run_tasks(_annotated_task, tasks, num_workers)
    out_records = []
    for r in selected:
        js = np.asarray(r["joint_self"], np.float64)
        # Head box from the annotated head segment; an unannotated one is placed like a drawn head.
        if (js[NECK, :2] == 0).all() or (js[HEAD_TOP, :2] == 0).all():
            annotated = ~((js[:, 0] == 0) & (js[:, 1] == 0))
            scale = float(r["scale_provided"]) if float(r["scale_provided"]) > 0 else 1.0
            full = infer_missing_joints(js[:, :2], annotated, 200.0 * scale, np.asarray(r["objpos"], float))
            neck, top = full[NECK], full[HEAD_TOP]
        else:
            neck, top = js[NECK, :2], js[HEAD_TOP, :2]
        record = dict(r)
        record["headbox"] = np.round(head_box(neck, top), 3).tolist()
        out_records.append(record)
    write_annotations(out / "annotations.json", out_records)
    write_gt_mat(out / "gt_val.mat", [r for r in out_records if float(r["isValidation"]) == 1.0])
    seconds = time.perf_counter() - start
    return dict(people=len(out_records), val=sum(float(r["isValidation"]) == 1.0 for r in out_records),
                images=len(names), seconds=seconds, people_per_second=len(out_records) / max(seconds, 1e-9),
                output_dir=str(out))


# ----------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------
FLAGS = flags.FLAGS


def define_flags():
    """CLI flags (defined only when run as a program, so importing this module defines none)."""
    flags.DEFINE_string("output_dir", None, "Where images/, annotations.json and gt_val.mat are written.")
    flags.DEFINE_integer("num_train", 2000, "Training people to generate.")
    flags.DEFINE_integer("num_val", 400, "Validation people to generate.")
    flags.DEFINE_integer("seed", 0, "Random seed (same seed, same bytes).")
    flags.DEFINE_integer("num_workers", None, "Worker processes (default: os.cpu_count()).")
    flags.DEFINE_string("from_annotations", None,
                        "Render at the poses of this mpii_annotations-style .json/.json.gz instead "
                        "(--num_train/--num_val are then ignored).")
    flags.DEFINE_integer("max_people", None, "With --from_annotations: only the file's first K people.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    try:
        if FLAGS.from_annotations:
            summary = render_from_annotations(FLAGS.from_annotations, FLAGS.output_dir, FLAGS.max_people,
                                              FLAGS.seed, FLAGS.num_workers)
        else:
            if FLAGS.max_people is not None:
                raise ValueError("--max_people only applies with --from_annotations")
            summary = generate(FLAGS.output_dir, FLAGS.num_train, FLAGS.num_val, FLAGS.seed, FLAGS.num_workers)
    except (ValueError, OSError) as e:       # bad numbers, missing/unreadable input, unwritable output
        raise app.UsageError(str(e)) from None
    print(f"synth_mpii: {summary['people']} people ({summary['val']} val) in {summary['images']} images, "
          f"{summary['seconds']:.1f} s ({summary['people_per_second']:.0f} people/s) -> {summary['output_dir']}")


if __name__ == "__main__":
    define_flags()
    app.run(main)

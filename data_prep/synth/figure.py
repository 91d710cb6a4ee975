"""The generator's figures in 3D: body proportions, pose sampling, forward kinematics, projection and views.

Person frame: x = the person's left, y = up, z = forward (where the person faces); body-height units (ankle to
head top is about 1). Camera frame after yaw: x -> image right, y -> image up, z -> towards the camera.
Projection is orthographic (`View`, `Frame2D`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from kpt_tf.joints import NUM_JOINTS

(R_ANK, R_KNE, R_HIP, L_HIP, L_KNE, L_ANK, PELVIS, THORAX, NECK, HEAD_TOP,
 R_WRI, R_ELB, R_SHO, L_SHO, L_ELB, L_WRI) = range(NUM_JOINTS)


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
FORWARD = np.array([0.0, 0.0, 1.0])
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
        bend_dir = shoulder @ _ry(-sgn * arm["psi"] * _RAD) @ FORWARD
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


"""Joint groups: from the mutual information of joint locations (average-linkage agglomeration on the MI) or from
the body's structure (a fixed hierarchy of body parts), for the Part-Based Branching Network.

Average linkage (merge the two clusters with the highest mean pairwise affinity) is deterministic, needs no
random start (unlike spectral clustering's k-means) and does not let one strong pair pull a weak joint into a
group (unlike single linkage). Ties are broken by the lowest joint indices (scipy's linkage documents no tie
rule, and 16 joints need no fast algorithm).
"""

from __future__ import annotations

import numpy as np

from kpt_tf.joints import JOINT_NAMES, MPII_SHORT_NAMES, JointSubset


def agglomerate(affinity: np.ndarray, num_groups: int) -> list[list[int]]:
    """Groups (lists of row indices, each sorted, groups ordered by first member) of `affinity` [J, J]."""
    affinity = np.asarray(affinity, np.float64)
    j = affinity.shape[0]
    if not 1 <= num_groups <= j:
        raise ValueError(f"--groups must be between 1 and the number of joints ({j}), got {num_groups}")
    if np.isnan(affinity[~np.eye(j, dtype=bool)]).any():
        raise ValueError("the affinity has undefined (NaN) pairs: too few people annotate both joints of a pair")
    clusters = [[i] for i in range(j)]
    while len(clusters) > num_groups:
        best = None
        for x in range(len(clusters)):
            for y in range(x + 1, len(clusters)):
                score = float(affinity[np.ix_(clusters[x], clusters[y])].mean())
                if best is None or score > best[0] + 1e-12:
                    best = (score, x, y)
        _, x, y = best
        clusters[x] = sorted(clusters[x] + clusters[y])
        del clusters[y]
    return sorted(clusters, key=lambda c: c[0])


# The body's structure: seven connected parts, and for each number of groups the coarser grouping that keeps
# every group connected in the skeleton (kpt_tf.joints.SKELETON: the hips meet at the pelvis, the shoulders at
# the thorax). 2 groups are MPII's `upper` and `lower`.
_PARTS = {
    "head": ("upper_neck", "head_top"), "thorax": ("thorax",), "pelvis": ("pelvis",),
    "right_arm": ("right_shoulder", "right_elbow", "right_wrist"),
    "left_arm": ("left_shoulder", "left_elbow", "left_wrist"),
    "right_leg": ("right_hip", "right_knee", "right_ankle"), "left_leg": ("left_hip", "left_knee", "left_ankle"),
}
BODY_LEVELS = (
    (("head", "thorax", "pelvis", "right_arm", "left_arm", "right_leg", "left_leg"),),
    (("head", "thorax", "right_arm", "left_arm"), ("pelvis", "right_leg", "left_leg")),
    (("head",), ("thorax", "right_arm", "left_arm"), ("pelvis", "right_leg", "left_leg")),
    (("head", "thorax"), ("right_arm",), ("left_arm",), ("pelvis", "right_leg", "left_leg")),
    (("head", "thorax", "pelvis"), ("right_arm",), ("left_arm",), ("right_leg",), ("left_leg",)),
    (("head",), ("thorax", "pelvis"), ("right_arm",), ("left_arm",), ("right_leg",), ("left_leg",)),
    (("head",), ("thorax",), ("pelvis",), ("right_arm",), ("left_arm",), ("right_leg",), ("left_leg",)),
)


def body_groups(subset: JointSubset, num_groups: int) -> list[list[int]]:
    """Body-structure groups of the subset's joints (positions in the subset): the first level of BODY_LEVELS
    that leaves exactly `num_groups` non-empty groups once restricted to the subset (groups of a subset that
    lacks the thorax or the pelvis may be unconnected)."""
    names = list(subset.names)
    found = []
    for level in BODY_LEVELS:
        groups = [sorted(names.index(j) for part in group for j in _PARTS[part] if j in names) for group in level]
        groups = [g for g in groups if g]
        if len(groups) == num_groups:
            return sorted(groups, key=lambda g: g[0])
        found.append(len(groups))
    raise ValueError(f"the body grouping of {subset.name} has {sorted(set(found))} groups, not {num_groups}")


def mi_groups(mi: np.ndarray, num_groups: int) -> list[list[int]]:
    """Groups of joints that share the most information (average linkage on the MI, unconstrained)."""
    return agglomerate(mi, num_groups)


def group_name(joint_names) -> str:
    """A readable name made only from the group's own joints: MPII short names, a left/right pair as its
    type alone (`rank`, `lank` -> `ank`), in joint order: legs -> `ank_kne_hip`."""
    indices = sorted(JOINT_NAMES.index(n) for n in joint_names)
    codes = []
    for i in indices:
        short = MPII_SHORT_NAMES[i]
        code = short
        if short[0] in "rl":                              # a sided joint: rank, lelb, ...
            mirror = ("l" if short[0] == "r" else "r") + short[1:]
            if JOINT_NAMES[MPII_SHORT_NAMES.index(mirror)] in joint_names:
                code = short[1:]
        if code not in codes:
            codes.append(code)
    return "_".join(codes)

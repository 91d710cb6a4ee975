"""Joint groups: from the mutual information of joint locations (average-linkage agglomeration on the MI) or from
the body's structure (a fixed hierarchy of body parts), for the Part-Based Branching Network.

Average linkage (merge the two clusters with the highest mean pairwise affinity) is deterministic, needs no
random start (unlike spectral clustering's k-means) and does not let one strong pair pull a weak joint into a
group (unlike single linkage). Ties are broken by the lowest joint indices (scipy's linkage documents no tie
rule, and 16 joints need no fast algorithm).
"""

from __future__ import annotations

import numpy as np

from kpt_tf.joints import MPII16, JointSubset
from kpt_tf.layouts import KeypointLayout


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
# every group connected in the skeleton (MPII's: the hips meet at the pelvis, the shoulders at the thorax; COCO's
# joins them directly and its face to the shoulders through the ears). 2 groups are each layout's `upper` and
# `lower`. Parts list canonical joint names, which layouts share where the joint is the same (the limbs); the
# head is MPII's upper neck and head top or COCO's face, and COCO has no thorax or pelvis (those parts are empty).
_PARTS = {
    "head": ("upper_neck", "head_top", "nose", "left_eye", "right_eye", "left_ear", "right_ear"),
    "thorax": ("thorax",), "pelvis": ("pelvis",),
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
    that leaves exactly `num_groups` non-empty groups once restricted to the subset (groups of an MPII subset that
    lacks the thorax or the pelvis may be unconnected). A joint no body part names is refused, not left out."""
    names = list(subset.names)
    placed = {joint for joints in _PARTS.values() for joint in joints}
    unplaced = [joint for joint in names if joint not in placed]
    if unplaced:
        raise ValueError(f"the body grouping has no body part for {', '.join(unplaced)} (layout "
                         f"{subset.layout.name}): use --method mi")
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


def group_name(joint_names, layout: KeypointLayout = MPII16) -> str:
    """A readable name made only from the group's own joints, in the layout's joint order: each joint's short name
    (MPII's `rank`; the canonical name in a layout without short names), a flip pair both in the group as what
    its two names share (`rank`, `lank` -> `ank`; `left_eye`, `right_eye` -> `eye`): MPII legs -> `ank_kne_hip`."""
    indices = sorted(layout.index(n) for n in joint_names)
    labels = layout.short_names or layout.joints
    partner = layout.flip_partners
    codes = []
    for i in indices:
        code = labels[i]
        if partner[i] != i and partner[i] in indices:
            code = _pair_type(labels[i], labels[partner[i]]) or code
        if code not in codes:
            codes.append(code)
    return "_".join(codes)


def _pair_type(a: str, b: str) -> str:
    """What two flip-paired names share after their side: the common ending (`rank`, `lank` -> `ank`); for
    snake_case names from the word after the side on (`left_big_toe`, `right_big_toe` -> `big_toe`, not the
    `t_big_toe` that `left` and `right` happen to end alike in). Empty when they share nothing."""
    k = 0
    while k < min(len(a), len(b)) and a[-1 - k] == b[-1 - k]:
        k += 1
    common = a[len(a) - k:]
    if "_" in a and "_" in b:
        common = common.split("_", 1)[1] if "_" in common else ""
    return common

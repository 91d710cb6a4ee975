"""Pairwise mutual information (MI) of joint locations.

Each joint's location, relative to the person centre and divided by the person scale, is a 2-D random variable.
It is discretised per axis into `bins` equal-frequency bins (quantiles of that joint's annotated values), so a
joint has `bins**2` states and the estimate is invariant to any monotone rescaling of an axis. For a pair, only
people with both joints annotated count. The estimator is the plug-in MI with the Miller-Madow correction of
each entropy (H + (m - 1) / 2N, m = occupied cells): its first-order bias, (cells - 1) / 2N per entropy, is what
makes plug-in MI of independent joints positive. Two checks come with it: the shuffled-pairs baseline (MI after
pairing one joint's values with another person's, which is 0 in expectation; reported as its mean and 95th
percentile) and a bootstrap over people for the uncertainty (standard deviation). Units: bits. The diagonal holds
each joint's (corrected) entropy, which is what the MI of a joint with an exact copy of itself equals.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from kpt_tf.joints import MPII16, JointSubset


def quantile_codes(values: np.ndarray, bins: int) -> np.ndarray:
    """[N] ints in 0..bins-1: the equal-frequency bin of each value (ties stay in one bin)."""
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, values, side="right").astype(np.int64)


def joint_states(locations: np.ndarray, annotated: np.ndarray, bins: int) -> np.ndarray:
    """[N, J] discrete state (x bin * bins + y bin) of every joint; -1 where not annotated."""
    n, j = annotated.shape
    states = np.full((n, j), -1, np.int64)
    for k in range(j):
        rows = np.flatnonzero(annotated[:, k])
        if rows.size:
            xy = locations[rows, k]
            states[rows, k] = quantile_codes(xy[:, 0], bins) * bins + quantile_codes(xy[:, 1], bins)
    return states


def entropy_bits(states: np.ndarray) -> float:
    """Miller-Madow corrected plug-in entropy (bits) of a sample of discrete states."""
    n = states.size
    if n == 0:
        return float("nan")
    counts = np.bincount(states)
    counts = counts[counts > 0]
    p = counts / n
    return float(-(p * np.log2(p)).sum() + (counts.size - 1) / (2.0 * n * np.log(2)))


def mutual_information_bits(a: np.ndarray, b: np.ndarray, num_states: int) -> float:
    """MI (bits) of two paired samples of states in 0..num_states-1, each entropy Miller-Madow corrected."""
    return entropy_bits(a) + entropy_bits(b) - entropy_bits(a * num_states + b)


@dataclasses.dataclass
class MIMatrix:
    joints: list[str]
    mi: np.ndarray              # [J, J] bits; diagonal = entropy
    std: np.ndarray             # [J, J] bootstrap standard deviation
    shuffled_mean: np.ndarray   # [J, J] MI of shuffled pairs: mean over shuffles
    shuffled_p95: np.ndarray    # [J, J] and its 95th percentile
    pair_people: np.ndarray     # [J, J] people with both joints annotated
    bins: int
    people: int
    source: str = ""            # where the locations came from

    def to_json(self) -> dict:
        return {"joints": self.joints, "mi": self.mi.round(5).tolist(), "mi_std": self.std.round(5).tolist(),
                "mi_shuffled_mean": self.shuffled_mean.round(5).tolist(),
                "mi_shuffled_p95": self.shuffled_p95.round(5).tolist(), "pair_people": self.pair_people.tolist(),
                "units": "bits", "bins_per_axis": self.bins, "people": self.people, "source": self.source,
                "estimator": "plug-in on equal-frequency bins, Miller-Madow corrected entropies; shuffled-pairs "
                             "baseline; bootstrap std over people (kpt_tf/grouping/mutual_information.py)"}

    @classmethod
    def from_json(cls, d: dict) -> "MIMatrix":
        return cls(joints=list(d["joints"]), mi=np.asarray(d["mi"]), std=np.asarray(d["mi_std"]),
                   shuffled_mean=np.asarray(d["mi_shuffled_mean"]), shuffled_p95=np.asarray(d["mi_shuffled_p95"]),
                   pair_people=np.asarray(d["pair_people"]), bins=int(d["bins_per_axis"]), people=int(d["people"]),
                   source=str(d.get("source", "")))


def mi_matrix(locations: np.ndarray, annotated: np.ndarray, joints: "JointSubset | Sequence[str] | None" = None,
              bins: int = 6, bootstrap: int = 30, shuffles: int = 10, seed: int = 0,
              min_people: int = 50) -> MIMatrix:
    """The pairwise MI of `locations` [N, J, 2] (centre-relative, scale-normalised) over people with both
    joints `annotated` [N, J]. Pairs with fewer than `min_people` such people get NaN. `joints` names the J
    columns: a joint subset (its names, in its layout) or names; default MPII's 16 joints."""
    names = _joint_names(joints, np.shape(annotated)[1])
    locations = np.asarray(locations, np.float64)
    annotated = np.asarray(annotated, bool) & np.isfinite(locations).all(-1)
    rng = np.random.default_rng(seed)
    states = joint_states(locations, annotated, bins)
    num_states = bins * bins
    j = annotated.shape[1]
    shape = (j, j)
    mi, std, sh_mean, sh_p95 = (np.full(shape, np.nan) for _ in range(4))
    pairs = np.zeros(shape, np.int64)
    for a in range(j):
        for b in range(a, j):
            rows = np.flatnonzero(annotated[:, a] & annotated[:, b])
            pairs[a, b] = pairs[b, a] = rows.size
            if rows.size < min_people:
                continue
            sa, sb = states[rows, a], states[rows, b]
            mi[a, b] = mi[b, a] = mutual_information_bits(sa, sb, num_states)
            boot = [mutual_information_bits(sa[r], sb[r], num_states)
                    for r in (rng.integers(0, rows.size, rows.size) for _ in range(bootstrap))]
            std[a, b] = std[b, a] = float(np.std(boot)) if boot else np.nan
            if a != b:
                shuffled = [mutual_information_bits(sa, rng.permutation(sb), num_states) for _ in range(shuffles)]
                sh_mean[a, b] = sh_mean[b, a] = float(np.mean(shuffled))
                sh_p95[a, b] = sh_p95[b, a] = float(np.quantile(shuffled, 0.95))
    return MIMatrix(names, mi, std, sh_mean, sh_p95, pairs, bins, int(annotated.shape[0]))


def _joint_names(joints: "JointSubset | Sequence[str] | None", columns: int) -> list[str]:
    names = list(MPII16.joints if joints is None else joints.names if isinstance(joints, JointSubset) else joints)
    if len(names) != columns:
        default = f" (the default: {MPII16.dataset}'s)" if joints is None else ""
        raise ValueError(f"the locations have {columns} joints but {len(names)} joint names{default}: give the "
                         "joint subset the columns are of")
    return names

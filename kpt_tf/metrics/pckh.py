"""PCKh on MPII in the three conventions in use (pure numpy, joint-subset aware).

One core serves file evaluation, training-time validation and joint-subset heads:
`score()` turns predictions and ground truth (0-based, any coordinate origin as long as both agree)
into `PCKhCounts`: per joint, how many people are annotated and how many predictions fall within each
threshold, with `<=` and with `<`. Every table is then exact arithmetic on those counts.

Conventions (see ../shared/CONVENTIONS.md; checked against the reference code):
  hrnet     HRNet / mmpose: correct when error <= t; rows are means of the left/right per-joint
            values, Head = head top; Mean = per-joint values weighted by annotated count over the
            joints other than pelvis and thorax (= pooled over them); Mean@0.1 at a true 0.10
            (HRNet's code reads index 11 of its threshold list, i.e. 0.11).
  bearpaw   bearpaw/pytorch-pose: correct when error < t; same rows; Mean = plain, unweighted mean of
            the per-joint values of the joints other than pelvis and thorax (its script prints no
            Mean@0.1; ours is the same rule at 0.10).
  official  the MPII toolkit (evalMPII / evaluatePCKh.m): `<=`; Head = mean of upper neck and head top;
            UBody pooled over shoulders, elbows and wrists; Total pooled over the 14 joints; AUC = area
            under the Total curve over thresholds 0..0.5 with the threshold axis scaled to [0, 1]
            (trapezoids, which is what its quadgk over a linear interpolation computes), in percent.
For a subset, every row and mean is restricted to the subset's joints; a row with none of its joints
present is left out, and a mean with no joint to average is None.

Rows, the joints left out of the Mean and the joint names come from the subset's keypoint layout
(kpt_tf/layouts; MPII's by default). The core, the HRNet and bearpaw tables and the per-joint figures are defined
for any layout whose people carry a head size; the official table is the MPII toolkit's, written for MPII's own
joints (its Head row and UBody name them), so it refuses any other layout (COCO is scored by OKS AP instead:
kpt_tf/metrics/coco.py).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from kpt_tf import layouts
from kpt_tf.joints import JointSubset
from kpt_tf.layouts import KeypointLayout

# 0.00, 0.01, ..., 0.50; k/100 so that THRESHOLDS[10] == 0.1 and THRESHOLDS[50] == 0.5 exactly.
THRESHOLDS = np.arange(51) / 100.0
PCKH_THRESHOLD = 0.5
# Head size = 0.6 x head-box diagonal (SC_BIAS of the official toolkit, HRNet and bearpaw).
HEAD_SIZE_FACTOR = 0.6
LOW_THRESHOLD = 0.1
# Layouts whose data have no head boxes (COCO) normalise by the person box instead: 0.1 x the annotated box's
# longer side (the crop box over BOX_PADDING), so that the 0.5 column is mmpose's bbox-normalised PCK@0.05
# (`PCKAccuracy(norm_item="bbox")`: error <= 0.05 x max(w, h)). Read as "PCK", not "PCKh", on such data.
PERSON_BOX_SIZE_FACTOR = 0.1

# The official toolkit's conventions are written for MPII's joints: its layout, the two joints its Head row
# averages and the six its UBody pools (wrists, elbows, shoulders: its columns 7..12), in MPII's order.
OFFICIAL_LAYOUT = "mpii16"
OFFICIAL_HEAD = ("upper_neck", "head_top")
OFFICIAL_UPPER_BODY = ("right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist")


def row_names(layout: KeypointLayout) -> tuple[str, ...]:
    """The report's rows for a layout's people (MPII: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle)."""
    return tuple(name for name, _ in layout.row_indices)


def has_official_table(layout: KeypointLayout) -> bool:
    """Whether the official MPII toolkit's table is defined for a layout's joints (MPII's alone)."""
    return layout == layouts.layout(OFFICIAL_LAYOUT)


def official_rows(layout: KeypointLayout) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The official toolkit's rows (Head = upper neck and head top, the others as the layout's), MPII only."""
    if not has_official_table(layout):
        raise ValueError(
            f"the official MPII toolkit's PCKh table (Head = upper neck and head top, UBody, Total, AUC) is defined "
            f"for MPII's joints (layout {OFFICIAL_LAYOUT}) alone, not for layout {layout.name}: use the HRNet or "
            "bearpaw table (rows from the layout), or OKS AP for COCO (kpt_tf.metrics.coco)")
    head = ("Head", tuple(layout.index(joint) for joint in OFFICIAL_HEAD))
    return (head,) + tuple(row for row in layout.row_indices if row[0] != "Head")


def normalizers(predictions, layout: KeypointLayout) -> tuple[np.ndarray, np.ndarray]:
    """([N] sizes a joint's error is divided by, [N] bool: the person can be scored) of `predictions`, by the
    layout's `pck_normalizer`: MPII's head boxes (people without one are left out) or the person boxes the
    model inputs showed (`Predictions.box_sides`)."""
    if layout.pck_normalizer == "person_box":
        from kpt_tf.geometry import BOX_PADDING

        sides = np.asarray(predictions.box_sides, dtype=np.float64)
        return PERSON_BOX_SIZE_FACTOR * sides / BOX_PADDING, sides > 0
    return head_sizes_from_boxes(predictions.head_boxes), np.asarray(predictions.has_head_box, dtype=bool)


def head_sizes_from_boxes(head_boxes: np.ndarray) -> np.ndarray:
    """[N] PCKh normaliser from head boxes [N,2,2] ((x1,y1),(x2,y2)) or [N,4] (x1,y1,x2,y2)."""
    boxes = np.asarray(head_boxes, dtype=np.float64).reshape(-1, 2, 2)
    return HEAD_SIZE_FACTOR * np.linalg.norm(boxes[:, 1] - boxes[:, 0], axis=-1)


# --- core ------------------------------------------------------------------------------------------

def normalized_errors(pred: np.ndarray, gt: np.ndarray, head_sizes: np.ndarray,
                      annotated: np.ndarray) -> np.ndarray:
    """[N,J] distance / head size; NaN where the joint is not annotated (whatever gt holds there)."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    annotated = np.asarray(annotated, dtype=bool)
    head_sizes = np.asarray(head_sizes, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"predictions {pred.shape} and ground truth {gt.shape} must both be [N,J,2]")
    if annotated.shape != pred.shape[:2]:
        raise ValueError(f"annotated mask {annotated.shape} does not match predictions {pred.shape[:2]}")
    if head_sizes.shape != (pred.shape[0],):
        raise ValueError(f"head sizes {head_sizes.shape} do not match {pred.shape[0]} people")
    with np.errstate(invalid="ignore", divide="ignore"):
        errors = np.linalg.norm(pred - gt, axis=-1) / head_sizes[:, None]
    # A non-finite prediction at an annotated joint is a miss (what the official toolkit does with NaN).
    errors = np.where(np.isnan(errors), np.inf, errors)
    return np.where(annotated, errors, np.nan)


def count_within(errors: np.ndarray, thresholds: Sequence[float] = THRESHOLDS,
                 inclusive: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold and joint, how many annotated joints have error <= t (or < t): ([T,J], [J])."""
    errors = np.asarray(errors, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    annotated = ~np.isnan(errors)
    compare = np.less_equal if inclusive else np.less
    with np.errstate(invalid="ignore"):
        within = compare(errors[None], thresholds[:, None, None]) & annotated[None]
    return within.sum(axis=1), annotated.sum(axis=0)


def correct_fractions(errors: np.ndarray, thresholds: Sequence[float] = THRESHOLDS,
                      inclusive: bool = True) -> np.ndarray:
    """[T,J] fraction correct per threshold and joint over annotated joints (NaN for none annotated)."""
    within, annotated = count_within(errors, thresholds, inclusive)
    with np.errstate(invalid="ignore", divide="ignore"):
        return within / annotated


@dataclasses.dataclass(frozen=True)
class PCKhCounts:
    """Counts every PCKh figure is computed from; columns are `joints.indices` (indices in its layout)."""

    joints: JointSubset
    thresholds: np.ndarray      # [T]
    annotated: np.ndarray       # [J] people with the joint annotated
    within_le: np.ndarray       # [T,J] annotated joints with error <= threshold
    within_lt: np.ndarray       # [T,J] annotated joints with error < threshold
    num_people: int

    def _row(self, threshold: float) -> int:
        hits = np.flatnonzero(np.isclose(self.thresholds, threshold, rtol=0, atol=1e-12))
        if not hits.size:
            raise ValueError(f"threshold {threshold} was not among the scored thresholds")
        return int(hits[0])

    def _columns(self, global_indices: Sequence[int]) -> list[int]:
        return [self.joints.indices.index(i) for i in global_indices if i in self.joints.indices]

    def per_joint(self, threshold: float = PCKH_THRESHOLD, inclusive: bool = True) -> np.ndarray:
        """[J] percent correct at `threshold` (NaN for a joint nobody has annotated)."""
        within = (self.within_le if inclusive else self.within_lt)[self._row(threshold)]
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100.0 * within / self.annotated

    def curve(self, global_indices: Optional[Sequence[int]] = None, inclusive: bool = True) -> np.ndarray:
        """[T] percent correct pooled over the given joints (default: the Mean's, `mean_joints`)."""
        columns = self._columns(self.mean_joints if global_indices is None else global_indices)
        within = (self.within_le if inclusive else self.within_lt)[:, columns].sum(axis=1)
        total = self.annotated[columns].sum()
        if total == 0:
            return np.full(len(self.thresholds), np.nan)
        return 100.0 * within / total

    def merge(self, other: "PCKhCounts") -> "PCKhCounts":
        """Counts of both sets of people (e.g. validation batches scored one at a time)."""
        if (other.joints.indices != self.joints.indices or other.joints.layout != self.joints.layout
                or not np.array_equal(other.thresholds, self.thresholds)):
            raise ValueError("cannot merge PCKh counts of different joints or thresholds")
        return dataclasses.replace(self, annotated=self.annotated + other.annotated,
                                   within_le=self.within_le + other.within_le,
                                   within_lt=self.within_lt + other.within_lt,
                                   num_people=self.num_people + other.num_people)

    @property
    def layout(self) -> KeypointLayout:
        return self.joints.layout

    @property
    def mean_joints(self) -> tuple[int, ...]:
        """Layout indices of the subset joints that enter the Mean (all but the layout's excluded ones: MPII's
        pelvis and thorax)."""
        excluded = self.layout.excluded_from_mean_indices
        return tuple(i for i in self.joints.indices if i not in excluded)


def score(pred: np.ndarray, gt: np.ndarray, head_sizes: np.ndarray, annotated: np.ndarray,
          joints: "JointSubset | str | None" = None,
          thresholds: Sequence[float] = THRESHOLDS) -> PCKhCounts:
    """Count PCKh hits of predictions [N,J,2] against ground truth.

    `joints` names the columns of `pred` (a subset or spec, `coco17:all` for another layout; default MPII's 16).
    `gt` [N,·,2] and `annotated` [N,·] carry either the same J columns or every joint of the subset's layout in
    its order (then the subset's columns are picked out). Coordinates are in any one frame (0-based pixels by
    project convention), head_sizes [N] in pixels.
    """
    joints = JointSubset.parse("all" if joints is None else joints)
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    annotated = np.asarray(annotated, dtype=bool)
    if pred.ndim != 3 or pred.shape[1] != len(joints):
        raise ValueError(f"predictions have shape {pred.shape}, expected [N,{len(joints)},2] for joints "
                         f"{joints.name!r}")
    layout_joints = len(joints.layout.joints)
    reorder = joints.indices != tuple(range(layout_joints))
    if reorder and gt.ndim == 3 and gt.shape[1] == layout_joints:
        gt = gt[:, list(joints.indices)]
    if reorder and annotated.ndim == 2 and annotated.shape[1] == layout_joints:
        annotated = annotated[:, list(joints.indices)]
    errors = normalized_errors(pred, gt, head_sizes, annotated)
    within_le, counts = count_within(errors, thresholds, inclusive=True)
    within_lt, _ = count_within(errors, thresholds, inclusive=False)
    return PCKhCounts(joints=joints, thresholds=np.asarray(thresholds, dtype=np.float64), annotated=counts,
                      within_le=within_le, within_lt=within_lt, num_people=int(pred.shape[0]))


# --- tables ----------------------------------------------------------------------------------------

def _finite_or_none(value) -> Optional[float]:
    value = float(value)
    return value if np.isfinite(value) else None


def _group_rows(counts: PCKhCounts, groups, threshold: float, inclusive: bool) -> dict[str, Optional[float]]:
    """Row = plain mean of the per-joint values of the group's joints present in the subset."""
    values = counts.per_joint(threshold, inclusive)
    rows = {}
    for name, members in groups:
        columns = counts._columns(members)
        if columns:
            with np.errstate(invalid="ignore"):
                rows[name] = _finite_or_none(np.mean(values[columns]))
    return rows


def _weighted_mean(counts: PCKhCounts, threshold: float, inclusive: bool) -> Optional[float]:
    # Per-joint values weighted by annotated counts == hits pooled over the Mean joints.
    columns = counts._columns(counts.mean_joints)
    within = (counts.within_le if inclusive else counts.within_lt)[counts._row(threshold), columns].sum()
    total = counts.annotated[columns].sum()
    return 100.0 * within / total if total else None


def _plain_mean(counts: PCKhCounts, threshold: float, inclusive: bool) -> Optional[float]:
    values = counts.per_joint(threshold, inclusive)[counts._columns(counts.mean_joints)]
    values = values[np.isfinite(values)]
    return float(np.mean(values)) if values.size else None


def hrnet_table(counts: PCKhCounts) -> dict[str, Optional[float]]:
    """HRNet/mmpose convention (`<=`, count-weighted Mean, Mean@0.1 at a true 0.10), percent; the layout's rows."""
    table = _group_rows(counts, counts.layout.row_indices, PCKH_THRESHOLD, inclusive=True)
    table["Mean"] = _weighted_mean(counts, PCKH_THRESHOLD, inclusive=True)
    table["Mean@0.1"] = _weighted_mean(counts, LOW_THRESHOLD, inclusive=True)
    return table


def hrnet_slipped_mean_at_01(counts: PCKhCounts) -> Optional[float]:
    """What HRNet's own code prints as Mean@0.1 (really at 0.11), for comparing with HRNet logs."""
    return _weighted_mean(counts, 0.11, inclusive=True)


def bearpaw_table(counts: PCKhCounts) -> dict[str, Optional[float]]:
    """bearpaw/pytorch-pose convention (`<`, plain unweighted Mean), percent; the layout's rows."""
    table = _group_rows(counts, counts.layout.row_indices, PCKH_THRESHOLD, inclusive=False)
    table["Mean"] = _plain_mean(counts, PCKH_THRESHOLD, inclusive=False)
    table["Mean@0.1"] = _plain_mean(counts, LOW_THRESHOLD, inclusive=False)
    return table


def area_under_curve(curve: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> Optional[float]:
    """Official AUC: trapezoids under `curve` (percent) with thresholds rescaled to [0, 1]."""
    curve = np.asarray(curve, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if len(thresholds) < 2 or not np.isfinite(curve).all():
        return None
    x = (thresholds - thresholds.min()) / (thresholds.max() - thresholds.min())
    return float(np.sum(np.diff(x) * (curve[1:] + curve[:-1]) / 2.0))


def official_table(counts: PCKhCounts) -> dict[str, Optional[float]]:
    """MPII toolkit convention (Head = neck & head top, UBody, Total pooled, AUC), percent. MPII's layout only
    (ValueError for another: the toolkit's rows name MPII's joints)."""
    table = _group_rows(counts, official_rows(counts.layout), PCKH_THRESHOLD, inclusive=True)
    row = counts._row(PCKH_THRESHOLD)
    upper_body = tuple(counts.layout.index(joint) for joint in OFFICIAL_UPPER_BODY)
    upper = counts.curve(upper_body)
    table["UBody"] = _finite_or_none(upper[row]) if counts._columns(upper_body) else None
    total = counts.curve()
    table["Total"] = _finite_or_none(total[row])
    table["AUC"] = area_under_curve(total, counts.thresholds)
    return table


def per_joint_table(counts: PCKhCounts, threshold: float = PCKH_THRESHOLD) -> dict[str, Optional[float]]:
    """{joint name: PCKh (`<=`) at `threshold`, percent} for the subset's joints, in subset order."""
    values = counts.per_joint(threshold, inclusive=True)
    return {name: _finite_or_none(v) for name, v in zip(counts.joints.names, values)}


def report(counts: PCKhCounts) -> dict:
    """The evaluation dict (the CLI's JSON): three convention tables, per-joint PCKh@0.5, Total curve. Another
    layout than MPII's has no "official" table (see `official_table`)."""
    result = {"hrnet": hrnet_table(counts), "bearpaw": bearpaw_table(counts)}
    if has_official_table(counts.layout):
        result["official"] = official_table(counts)
    result["per_joint"] = per_joint_table(counts)
    result["curve"] = [_finite_or_none(v) for v in counts.curve()]
    return result


def score_predictions(predictions, joints: "JointSubset | str | None" = None) -> dict:
    """Training-time validation summary (HRNet convention) of a `kpt_tf.inference.Predictions`.

    Reads `joints` [N,J,2], `gt_joints` [N,J,2], `annotated` [N,J], `head_boxes` [N,4] (x1,y1,x2,y2) and
    `has_head_box` [N]; people without a head box cannot be normalised and are left out. A layout without head
    boxes (COCO) is normalised by the person box instead (`normalizers`).
    Returns {"mean", "mean@0.1", "per_joint", "per_joint@0.1", "num_people", "counts"}; figures in percent,
    NaN (not None, so Keras logs stay numeric) where nothing could be scored.
    """
    subset = JointSubset.parse("all" if joints is None else joints)
    head_sizes, has_box = normalizers(predictions, subset.layout)
    annotated = np.asarray(predictions.annotated, dtype=bool) & has_box[:, None]
    counts = score(predictions.joints, predictions.gt_joints, head_sizes, annotated, joints)
    table = hrnet_table(counts)

    out = {
        "mean": _nan(table["Mean"]),
        "mean@0.1": _nan(table["Mean@0.1"]),
        "per_joint": {k: _nan(v) for k, v in per_joint_table(counts, PCKH_THRESHOLD).items()},
        "per_joint@0.1": {k: _nan(v) for k, v in per_joint_table(counts, LOW_THRESHOLD).items()},
        "num_people": int(has_box.sum()),
        "counts": counts,
    }
    if getattr(predictions, "visible", None) is not None:
        out.update(visibility_split(predictions, annotated, head_sizes, joints))
    return out


def _nan(value):
    return float("nan") if value is None else float(value)


def visibility_split(predictions, annotated: np.ndarray, head_sizes: np.ndarray, joints) -> dict:
    """PCKh@0.5 (HRNet convention) of the annotated joints split by the records' visibility flag:
    {"visible": {"mean", "per_joint", "counts"}, "occluded": {...}}; occluded = annotated but not visible.
    A joint never seen in one split is NaN there, and the split's Mean pools what is there."""
    visible = np.asarray(predictions.visible, bool)
    out = {}
    for name, mask in (("visible", annotated & visible), ("occluded", annotated & ~visible)):
        counts = score(predictions.joints, predictions.gt_joints, head_sizes, mask, joints)
        out[name] = {"mean": _nan(hrnet_table(counts)["Mean"]),
                     "per_joint": {k: _nan(v) for k, v in per_joint_table(counts, PCKH_THRESHOLD).items()},
                     "counts": counts}
    return out


def visibility_table(split: dict) -> str:
    """Rows visible / occluded: the HRNet groups and Mean at PCKh@0.5, and how many joints each split holds."""
    width = 9
    rows = {name: hrnet_table(split[name]["counts"]) for name in ("visible", "occluded")}
    columns = [c for c in rows["visible"] if c != "Mean@0.1"]
    lines = ["PCKh@0.5 by visibility (HRNet convention; occluded = annotated but not visible)",
             "split".ljust(12) + "joints".rjust(8) + "".join(c.rjust(width) for c in columns)]
    for name, table in rows.items():
        counts = split[name]["counts"]
        total = int(counts.annotated[counts._columns(counts.mean_joints)].sum())
        lines.append(name.ljust(12) + str(total).rjust(8) + "".join(_cell(table.get(c), 2, width) for c in columns))
    return "\n".join(lines)


# --- text ------------------------------------------------------------------------------------------

def _cell(value: Optional[float], decimals: int, width: int) -> str:
    text = "-" if value is None or not np.isfinite(value) else f"{value:.{decimals}f}"
    return text.rjust(width)


def format_table(counts: PCKhCounts, title: str = "") -> str:
    """Human-readable tables: the three conventions (the official one for MPII's layout only), then per joint
    @0.5, @0.1 and AUC."""
    lines = []
    if title:
        lines.append(title)
    # Another layout's subset names may read like MPII's (`all`), so they carry their layout's prefix.
    joints_name = counts.joints.name if counts.layout.name == layouts.DEFAULT_LAYOUT else counts.joints.qualified_name
    lines.append(f"PCKh on {counts.num_people} people, joints: {joints_name}")
    width, label = 9, 30
    hrnet, bearpaw = hrnet_table(counts), bearpaw_table(counts)
    columns = [k for k in hrnet]
    lines.append("")
    lines.append("convention".ljust(label) + "".join(c.rjust(width) for c in columns))
    lines.append("HRNet/mmpose  (<=, weighted)".ljust(label) + "".join(_cell(hrnet[c], 2, width) for c in columns))
    lines.append("bearpaw       (<, plain mean)".ljust(label)
                 + "".join(_cell(bearpaw.get(c), 2, width) for c in columns))
    lines.append("")
    lines.extend(_official_lines(counts, label, width))
    slipped = hrnet_slipped_mean_at_01(counts) if np.isclose(counts.thresholds, 0.11).any() else None
    if slipped is not None:
        lines.append(f"(HRNet's own code prints Mean@0.1 at threshold 0.11: {slipped:.2f})")
    lines.append("")
    lines.extend(_per_joint_lines(counts, width))
    return "\n".join(lines)


def _official_lines(counts: PCKhCounts, label: int, width: int) -> list[str]:
    if not has_official_table(counts.layout):
        return [f"official MPII toolkit: defined for MPII's joints only, not computed for layout {counts.layout.name}"]
    official = official_table(counts)
    # The toolkit prints one decimal (%1.1f); so do we, to make its figures directly comparable.
    return ["official MPII toolkit (<=)".ljust(label) + "".join(c.rjust(width) for c in official),
            "".ljust(label) + "".join(_cell(official[c], 1, width) for c in official)]


def _per_joint_lines(counts: PCKhCounts, width: int) -> list[str]:
    at_05 = counts.per_joint(PCKH_THRESHOLD)
    at_01 = counts.per_joint(LOW_THRESHOLD)
    lines = ["joint (<=)".ljust(16) + "annotated".rjust(10) + "@0.5".rjust(width) + "@0.1".rjust(width)
             + "AUC".rjust(width)]
    for k, (index, name) in enumerate(zip(counts.joints.indices, counts.joints.names)):
        joint_auc = area_under_curve(counts.curve((index,)), counts.thresholds)
        lines.append(name.ljust(16) + str(int(counts.annotated[k])).rjust(10)
                     + _cell(at_05[k], 2, width) + _cell(at_01[k], 2, width) + _cell(joint_auc, 2, width))
    excluded = counts.layout.excluded_from_mean_indices
    left_out = [name for index, name in zip(counts.joints.indices, counts.joints.names) if index in excluded]
    if left_out:
        aggregates = "Mean, Total or AUC" if has_official_table(counts.layout) else "Mean"
        lines.append(f"({' and '.join(left_out)} listed for completeness; no {aggregates} includes them)")
    return lines

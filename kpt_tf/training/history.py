"""The per-epoch validation record: one typed structure shared by the validation callback, the training
summary (`train_summary.json`) and the experiment reports, and the epoch-log keys it adds."""

from __future__ import annotations

import dataclasses

# Epoch-log keys (CSVLogger columns, TensorBoard scalars, the best-checkpoint monitor of resume.RunCheckpoints).
MEAN_LOG_KEY = "val_pckh_mean"
MEAN_01_LOG_KEY = "val_pckh01_mean"
VISIBLE_MEAN_LOG_KEY = "val_pckh_visible_mean"
OCCLUDED_MEAN_LOG_KEY = "val_pckh_occluded_mean"
JOINT_LOG_PREFIX = "val_pckh_"


@dataclasses.dataclass(frozen=True)
class EpochScores:
    """Validation PCKh after one epoch, in percent (HRNet convention)."""

    epoch: int                 # 1-based
    seconds: float             # wall time since training started, at the end of this epoch's validation
    mean: float                # PCKh@0.5 mean
    mean_01: float             # PCKh@0.1 mean (a true 0.10)
    per_joint: dict            # joint name -> PCKh@0.5
    per_joint_01: dict         # joint name -> PCKh@0.1
    # PCKh@0.5 of the visible and of the occluded (annotated, not visible) joints; None when unknown
    mean_visible: float | None = None
    mean_occluded: float | None = None
    per_joint_visible: dict = dataclasses.field(default_factory=dict)
    per_joint_occluded: dict = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"epoch": self.epoch, "seconds": self.seconds, "mean": self.mean, "mean@0.1": self.mean_01,
                "per_joint": dict(self.per_joint), "per_joint@0.1": dict(self.per_joint_01),
                "mean_visible": self.mean_visible, "mean_occluded": self.mean_occluded,
                "per_joint_visible": dict(self.per_joint_visible),
                "per_joint_occluded": dict(self.per_joint_occluded)}

    @classmethod
    def from_dict(cls, d: dict) -> "EpochScores":
        return cls(epoch=int(d["epoch"]), seconds=float(d["seconds"]), mean=float(d["mean"]),
                   mean_01=float(d["mean@0.1"]), per_joint=dict(d["per_joint"]),
                   per_joint_01=dict(d["per_joint@0.1"]), mean_visible=d.get("mean_visible"),
                   mean_occluded=d.get("mean_occluded"), per_joint_visible=dict(d.get("per_joint_visible", {})),
                   per_joint_occluded=dict(d.get("per_joint_occluded", {})))

    @classmethod
    def from_report(cls, epoch: int, seconds: float, report: dict) -> "EpochScores":
        """From `pckh.score_predictions`' report (with its visibility split when the data has one)."""
        vis, occ = report.get("visible"), report.get("occluded")
        return cls(epoch=epoch, seconds=seconds, mean=report["mean"], mean_01=report["mean@0.1"],
                   per_joint=dict(report["per_joint"]), per_joint_01=dict(report["per_joint@0.1"]),
                   mean_visible=vis["mean"] if vis else None, mean_occluded=occ["mean"] if occ else None,
                   per_joint_visible=dict(vis["per_joint"]) if vis else {},
                   per_joint_occluded=dict(occ["per_joint"]) if occ else {})

    def logs(self) -> dict:
        """The entries this record adds to Keras' epoch logs."""
        out = {MEAN_LOG_KEY: self.mean, MEAN_01_LOG_KEY: self.mean_01}
        if self.mean_visible is not None:
            out[VISIBLE_MEAN_LOG_KEY] = self.mean_visible
            out[OCCLUDED_MEAN_LOG_KEY] = self.mean_occluded
        out.update({f"{JOINT_LOG_PREFIX}{name}": value for name, value in self.per_joint.items()})
        return out


def history_from_summary(summary: dict) -> list[EpochScores]:
    """The typed history of a training summary (as returned by `train` or read from train_summary.json)."""
    return [h if isinstance(h, EpochScores) else EpochScores.from_dict(h) for h in summary["history"]]

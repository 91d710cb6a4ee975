"""The per-epoch validation record: one typed structure shared by the validation callback, the training
summary (`train_summary.json`) and the experiment reports, and the epoch-log keys it adds."""

from __future__ import annotations

import dataclasses

# Epoch-log keys (CSVLogger columns, TensorBoard scalars, ModelCheckpoint's monitor).
MEAN_LOG_KEY = "val_pckh_mean"
MEAN_01_LOG_KEY = "val_pckh01_mean"
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

    def to_dict(self) -> dict:
        return {"epoch": self.epoch, "seconds": self.seconds, "mean": self.mean, "mean@0.1": self.mean_01,
                "per_joint": dict(self.per_joint), "per_joint@0.1": dict(self.per_joint_01)}

    @classmethod
    def from_dict(cls, d: dict) -> "EpochScores":
        return cls(epoch=int(d["epoch"]), seconds=float(d["seconds"]), mean=float(d["mean"]),
                   mean_01=float(d["mean@0.1"]), per_joint=dict(d["per_joint"]),
                   per_joint_01=dict(d["per_joint@0.1"]))

    def logs(self) -> dict:
        """The entries this record adds to Keras' epoch logs."""
        out = {MEAN_LOG_KEY: self.mean, MEAN_01_LOG_KEY: self.mean_01}
        out.update({f"{JOINT_LOG_PREFIX}{name}": value for name, value in self.per_joint.items()})
        return out


def history_from_summary(summary: dict) -> list[EpochScores]:
    """The typed history of a training summary (as returned by `train` or read from train_summary.json)."""
    return [h if isinstance(h, EpochScores) else EpochScores.from_dict(h) for h in summary["history"]]

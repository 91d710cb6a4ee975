"""Tables and convergence plots of an experiment that trains several arms over seeds (KPTransfer's random /
transfer / frozen, distillation's four arms): per-arm curves and finals, paired differences between arms of the
same seed, epochs to a baseline arm's final level, one PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kpt_tf.layouts import PCK_LABELS, strict_pck_label
from kpt_tf.training.history import history_from_summary


def _curves(runs_of_arm: dict, value) -> np.ndarray:
    """[seeds, epochs] of `value(EpochScores)` over every run of an arm (cut to the shortest run)."""
    rows = [[value(h) for h in history_from_summary(summary)] for summary in runs_of_arm.values()]
    width = min(len(r) for r in rows)
    return np.array([r[:width] for r in rows], dtype=np.float64)


def first_epoch_reaching(curve: np.ndarray, level: float) -> int | None:
    """1-based epoch at which a curve first reaches `level` (None if never)."""
    hits = np.flatnonzero(curve >= level - 1e-9)
    return int(hits[0]) + 1 if hits.size else None


def last_fifth_gain(curve) -> float | None:
    """How much a curve still rose over the last fifth of its epochs: value at the last epoch minus the value
    round(n / 5) epochs earlier (28 epochs: epoch 28 minus epoch 22). Issue 8's flatness test: < 2 points for a
    baseline that has converged on its schedule. None for curves shorter than 2 epochs."""
    curve = np.asarray(curve, np.float64)
    if curve.size < 2:
        return None
    k = min(max(1, int(round(curve.size / 5))), curve.size - 1)
    return float(curve[-1] - curve[-1 - k])


def summarise_arms(runs: dict, *, metric: str, baseline: str | None = None, comparisons=(),
                   epoch_offsets=None) -> dict:
    """runs: arm -> seed -> training summary. `metric`: what the validation figure is (the target layout's
    `pck_label`: PCKh@0.5 on MPII, the person-box PCK on COCO), named so in tables and plots. `baseline`: the arm
    whose final mean the others are timed against (epochs and seconds to 95 % / 100 % of it). `comparisons`: (arm,
    reference) pairs whose per-seed final differences are reported (paired over the seeds both have).
    `epoch_offsets`: arm -> epochs trained before its run started (continuation arms), used by the plot's x axis."""
    arms = list(runs)
    joints = list(history_from_summary(next(iter(runs[arms[0]].values())))[-1].per_joint)
    offsets = dict(epoch_offsets or {})
    out = {"arms": {}, "joints": joints, "seeds": sorted(next(iter(runs.values())).keys()), "baseline": baseline,
           "metric": metric}
    for arm in arms:
        mean_curves = _curves(runs[arm], lambda h: h.mean)
        entry = {
            "curve_mean": mean_curves.mean(0).tolist(), "curve_std": mean_curves.std(0).tolist(),
            "final_mean": float(mean_curves[:, -1].mean()), "final_std": float(mean_curves[:, -1].std()),
            "final_mean@0.1": float(_curves(runs[arm], lambda h: h.mean_01)[:, -1].mean()),
            "per_joint": {}, "per_joint@0.1": {},
            "per_seed_final": dict(zip(map(str, runs[arm]), mean_curves[:, -1].tolist())),
            "seconds": float(sum(r.get("seconds", 0.0) for r in runs[arm].values())),
            # wall time since the start of training at each epoch's end, mean over seeds
            "seconds_curve": _curves(runs[arm], lambda h: h.seconds).mean(0).tolist(),
            "epoch_offset": int(offsets.get(arm, 0)),
            "last_fifth_gain": last_fifth_gain(mean_curves.mean(0)),
        }
        for j in joints:
            c = _curves(runs[arm], lambda h, j=j: h.per_joint[j])
            entry["per_joint"][j] = {"mean": float(c[:, -1].mean()), "std": float(c[:, -1].std()),
                                     "curve_mean": c.mean(0).tolist(), "curve_std": c.std(0).tolist()}
            entry["per_joint@0.1"][j] = float(_curves(runs[arm], lambda h, j=j: h.per_joint_01[j])[:, -1].mean())
        entry.update(_visibility_finals(runs[arm], joints))
        out["arms"][arm] = entry
    if baseline is not None:
        level = out["arms"][baseline]["final_mean"]
        for entry in out["arms"].values():
            curve = np.asarray(entry["curve_mean"])
            for name, fraction in (("95pct", 0.95), ("100pct", 1.0)):
                epoch = first_epoch_reaching(curve, fraction * level)
                entry[f"epoch_to_{name}_baseline_final"] = epoch
                entry[f"seconds_to_{name}_baseline_final"] = (entry["seconds_curve"][epoch - 1]
                                                              if epoch is not None else None)
    out["comparisons"] = [paired_difference(out, arm, reference) for arm, reference in comparisons]
    return out


def _visibility_finals(runs_of_arm: dict, joints) -> dict:
    """Final-epoch PCKh of the visible and the occluded joints (mean, std over seeds; per joint means), when the
    validation data carried visibility."""
    finals = [history_from_summary(s)[-1] for s in runs_of_arm.values()]
    if any(h.mean_visible is None for h in finals):
        return {}
    out = {}
    for split in ("visible", "occluded"):
        means = np.array([getattr(h, f"mean_{split}") for h in finals], np.float64)
        per_joint = {j: float(np.nanmean([getattr(h, f"per_joint_{split}").get(j, np.nan) for h in finals]))
                     if any(np.isfinite(getattr(h, f"per_joint_{split}").get(j, np.nan)) for h in finals)
                     else float("nan") for j in joints}
        out[f"final_{split}"] = {"mean": float(np.nanmean(means)), "std": float(np.nanstd(means)),
                                 "per_joint": per_joint}
    return out


def paired_difference(summary: dict, arm: str, reference: str) -> dict:
    """Final mean PCKh of `arm` minus `reference`, seed by seed, and per joint (means over seeds)."""
    a, r = summary["arms"][arm], summary["arms"][reference]
    seeds = [s for s in a["per_seed_final"] if s in r["per_seed_final"]]
    diffs = np.array([a["per_seed_final"][s] - r["per_seed_final"][s] for s in seeds])
    return {"arm": arm, "reference": reference, "seeds": seeds, "per_seed": diffs.tolist(),
            "mean": float(diffs.mean()), "std": float(diffs.std()), "wins": int((diffs > 0).sum()),
            "per_joint": {j: a["per_joint"][j]["mean"] - r["per_joint"][j]["mean"] for j in summary["joints"]}}


def metric_of(summary: dict) -> str:
    """The validation figure a summary holds; results written before summaries named it were all MPII's PCKh."""
    return summary.get("metric", PCK_LABELS["head_box"])


def markdown_table(summary: dict, title: str) -> str:
    """Per joint and mean: every arm (mean ± std over seeds), then each comparison's difference."""
    arms = list(summary["arms"])
    comparisons = summary.get("comparisons", [])
    head = ["joint"] + arms + [f"{c['arm']} - {c['reference']}" for c in comparisons]
    lines = [f"### {title} ({metric_of(summary)}, final epoch, mean ± std over {len(summary['seeds'])} seed(s))", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for j in summary["joints"]:
        cells = [f"{summary['arms'][a]['per_joint'][j]['mean']:.2f} ± {summary['arms'][a]['per_joint'][j]['std']:.2f}"
                 for a in arms] + [f"{c['per_joint'][j]:+.2f}" for c in comparisons]
        lines.append(f"| {j} | " + " | ".join(cells) + " |")
    cells = ([f"{summary['arms'][a]['final_mean']:.2f} ± {summary['arms'][a]['final_std']:.2f}" for a in arms] +
             [f"{c['mean']:+.2f} ± {c['std']:.2f}" for c in comparisons])
    lines.append("| **Mean** | " + " | ".join(cells) + " |")
    if comparisons:
        lines += ["", f"| comparison | per seed (final mean {metric_of(summary)} difference) | seeds won |",
                  "|---|---|---|"]
        for c in comparisons:
            per_seed = ", ".join(f"{s}: {d:+.2f}" for s, d in zip(c["seeds"], c["per_seed"]))
            lines.append(f"| {c['arm']} - {c['reference']} | {per_seed} | {c['wins']} of {len(c['seeds'])} |")
    if all("final_visible" in summary["arms"][a] for a in arms):
        lines += ["", "| arm | visible joints | occluded joints (annotated, not visible) |", "|---|---|---|"]
        for a in arms:
            v, o = summary["arms"][a]["final_visible"], summary["arms"][a]["final_occluded"]
            lines.append(f"| {a} | {v['mean']:.2f} ± {v['std']:.2f} | {o['mean']:.2f} ± {o['std']:.2f} |")
    baseline = summary.get("baseline")
    strict = strict_pck_label(metric_of(summary))     # MPII's Mean@0.1; no such column where it is not quoted
    head = ["arm"] + (["Mean@0.1"] if strict else []) + [
        "gain over the last fifth of the epochs", f"epoch (s) to 95 % of {baseline or 'baseline'}'s final",
        "epoch (s) to 100 %", "train seconds"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def reach(e, level):
        epoch = e.get(f"epoch_to_{level}_baseline_final")
        return "never" if epoch is None else f"{epoch} ({e[f'seconds_to_{level}_baseline_final']:.0f} s)"

    for a in arms:
        e = summary["arms"][a]
        reached = f"{reach(e, '95pct')} | {reach(e, '100pct')}" if baseline else "— | —"
        gain = e.get("last_fifth_gain")
        gain = "—" if gain is None else f"{gain:+.2f}"
        strict_cell = f"{e['final_mean@0.1']:.2f} | " if strict else ""
        lines.append(f"| {a} | {strict_cell}{gain} | {reached} | {e['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


DEFAULT_COLOURS = {"random": "tab:gray", "transfer": "tab:blue", "frozen": "tab:orange",
                   "gt": "tab:gray", "fpd": "tab:green", "gt_continued": "tab:brown", "fpd_continued": "tab:blue",
                   "hourglass": "tab:gray", "pbn_mi": "tab:red", "pbn_body": "tab:purple"}


def plot_arms(summary: dict, path: Path, title: str, reference_lines=None) -> Path:
    """Mean PCKh per epoch (top) and each joint's (grid), per arm, shaded ± std over seeds; continuation arms
    start at their epoch offset. `reference_lines`: label -> level (e.g. the teacher's PCKh), dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    joints = summary["joints"]
    cols = 4
    rows = 1 + (len(joints) + cols - 1) // cols
    fig = plt.figure(figsize=(4 * cols, 3 * rows))

    def draw(ax, mean, std, arm, offset):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        x = offset + np.arange(1, len(mean) + 1)
        mean, std = np.asarray(mean), np.asarray(std)
        ax.plot(x, mean, label=arm, color=DEFAULT_COLOURS.get(arm))
        ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=DEFAULT_COLOURS.get(arm))

    ax = fig.add_subplot(rows, 1, 1)
    for arm, e in summary["arms"].items():
        draw(ax, e["curve_mean"], e["curve_std"], arm, e.get("epoch_offset", 0))
    for label, level in (reference_lines or {}).items():
        ax.axhline(level, linestyle="--", color="black", linewidth=1, label=label)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric_of(summary)} (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    for i, j in enumerate(joints):
        ax = fig.add_subplot(rows, cols, cols + i + 1)
        for arm, e in summary["arms"].items():
            draw(ax, e["per_joint"][j]["curve_mean"], e["per_joint"][j]["curve_std"], arm, e.get("epoch_offset", 0))
        ax.set_title(j, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_arms_report(out_dir: Path, summary: dict, title: str, log=print, reference_lines=None) -> dict:
    """`results.json`, `results.md` and `convergence.png` of one comparison in `out_dir`; returns the summary
    with `plot_png` and `title` added."""
    out_dir = Path(out_dir)
    summary = dict(summary, title=title)
    summary["plot_png"] = str(plot_arms(summary, out_dir / "convergence.png", title, reference_lines))
    (out_dir / "results.json").write_text(json.dumps(summary, indent=1))
    table = markdown_table(summary, title)
    (out_dir / "results.md").write_text(table)
    log(table)
    return summary

"""Tables and convergence plots of a KPTransfer step (random vs transfer vs frozen, over seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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


def summarise_step(source: str, target: str, runs: dict) -> dict:
    arms = list(runs)
    joints = list(history_from_summary(next(iter(runs[arms[0]].values())))[-1].per_joint)
    out = {"source": source, "target": target, "arms": {}, "joints": joints,
           "seeds": sorted(next(iter(runs.values())).keys())}
    for arm in arms:
        mean_curves = _curves(runs[arm], lambda h: h.mean)
        entry = {
            "curve_mean": mean_curves.mean(0).tolist(), "curve_std": mean_curves.std(0).tolist(),
            "final_mean": float(mean_curves[:, -1].mean()), "final_std": float(mean_curves[:, -1].std()),
            "final_mean@0.1": float(_curves(runs[arm], lambda h: h.mean_01)[:, -1].mean()),
            "per_joint": {}, "per_joint@0.1": {}, "per_seed_final": mean_curves[:, -1].tolist(),
            "seconds": float(sum(r.get("seconds", 0.0) for r in runs[arm].values())),
            # wall time since the start of training at each epoch's end, mean over seeds
            "seconds_curve": _curves(runs[arm], lambda h: h.seconds).mean(0).tolist(),
        }
        for j in joints:
            c = _curves(runs[arm], lambda h, j=j: h.per_joint[j])
            entry["per_joint"][j] = {"mean": float(c[:, -1].mean()), "std": float(c[:, -1].std()),
                                     "curve_mean": c.mean(0).tolist(), "curve_std": c.std(0).tolist()}
            entry["per_joint@0.1"][j] = float(_curves(runs[arm], lambda h, j=j: h.per_joint_01[j])[:, -1].mean())
        out["arms"][arm] = entry
    if "random" in out["arms"]:
        target_level = out["arms"]["random"]["final_mean"]
        for entry in out["arms"].values():
            curve = np.asarray(entry["curve_mean"])
            entry["epoch_to_95pct_random_final"] = first_epoch_reaching(curve, 0.95 * target_level)
            entry["epoch_to_100pct_random_final"] = first_epoch_reaching(curve, target_level)
            for level in ("95pct", "100pct"):
                epoch = entry[f"epoch_to_{level}_random_final"]
                entry[f"seconds_to_{level}_random_final"] = (entry["seconds_curve"][epoch - 1]
                                                             if epoch is not None else None)
    return out


def markdown_table(summary: dict) -> str:
    arms = list(summary["arms"])
    has_random = "random" in arms
    others = [a for a in arms if a != "random"]
    head = ["joint"] + [f"{a}" for a in arms] + ([f"{a} - random" for a in others] if has_random else [])
    lines = [f"### {summary['source']} -> {summary['target']} (PCKh@0.5, final epoch, mean ± std over "
             f"{len(summary['seeds'])} seed(s))", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]

    def row(label, get):
        vals = [get(a) for a in arms]
        cells = [f"{m:.2f} ± {s:.2f}" for m, s in vals]
        if has_random:
            cells += [f"{vals[arms.index(a)][0] - vals[arms.index('random')][0]:+.2f}" for a in others]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for j in summary["joints"]:
        row(j, lambda a, j=j: (summary["arms"][a]["per_joint"][j]["mean"], summary["arms"][a]["per_joint"][j]["std"]))
    row("**Mean**", lambda a: (summary["arms"][a]["final_mean"], summary["arms"][a]["final_std"]))
    lines += ["", "| arm | Mean@0.1 | epoch (s) to 95 % of random's final | epoch (s) to 100 % | train seconds |",
              "|---|---|---|---|---|"]

    def reach(e, level):
        epoch = e.get(f"epoch_to_{level}_random_final")
        return "never" if epoch is None else f"{epoch} ({e[f'seconds_to_{level}_random_final']:.0f} s)"

    for a in arms:
        e = summary["arms"][a]
        reached = (f"{reach(e, '95pct')} | {reach(e, '100pct')}" if has_random else "— | —")
        lines.append(f"| {a} | {e['final_mean@0.1']:.2f} | {reached} | {e['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def plot_step(summary: dict, path: Path) -> Path:
    """Mean PCKh per epoch (left) and each joint's (grid), per arm, shaded ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    joints = summary["joints"]
    cols = 4
    rows = 1 + (len(joints) + cols - 1) // cols
    fig = plt.figure(figsize=(4 * cols, 3 * rows))
    colours = {"random": "tab:gray", "transfer": "tab:blue", "frozen": "tab:orange"}

    from matplotlib.ticker import MaxNLocator

    def draw(ax, mean, std, arm):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        x = np.arange(1, len(mean) + 1)
        mean, std = np.asarray(mean), np.asarray(std)
        ax.plot(x, mean, label=arm, color=colours.get(arm))
        ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=colours.get(arm))

    ax = fig.add_subplot(rows, 1, 1)
    for arm, e in summary["arms"].items():
        draw(ax, e["curve_mean"], e["curve_std"], arm)
    ax.set_title(f"{summary['source']} -> {summary['target']}: mean PCKh@0.5 on the target")
    ax.set_xlabel("epoch")
    ax.set_ylabel("PCKh@0.5 (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    for i, j in enumerate(joints):
        ax = fig.add_subplot(rows, cols, cols + i + 1)
        for arm, e in summary["arms"].items():
            draw(ax, e["per_joint"][j]["curve_mean"], e["per_joint"][j]["curve_std"], arm)
        ax.set_title(j, fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_step_report(step_dir: Path, source: str, target: str, runs: dict, log=print) -> dict:
    step_dir = Path(step_dir)
    summary = summarise_step(source, target, runs)
    summary["plot_png"] = str(plot_step(summary, step_dir / "convergence.png"))
    (step_dir / "results.json").write_text(json.dumps(summary, indent=1))
    table = markdown_table(summary)
    (step_dir / "results.md").write_text(table)
    log(table)
    return summary


def write_overall_report(workdir: Path, overall: dict) -> None:
    workdir = Path(workdir)
    (workdir / "results.json").write_text(json.dumps(overall, indent=1))
    parts = [f"# KPTransfer: {' -> '.join([overall['source']['joints']] + [s['target'] for s in overall['steps']])}",
             "", f"Source {overall['source']['joints']}: best validation mean PCKh@0.5 "
                 f"{overall['source']['best_val_pckh_mean']:.2f}", ""]
    for s in overall["steps"]:
        parts += [markdown_table(s), f"![convergence]({Path(s['plot_png']).relative_to(workdir)})", ""]
    (workdir / "results.md").write_text("\n".join(parts))

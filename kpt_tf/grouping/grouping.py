"""The grouping workflow: estimate the MI of a data source, group its joints, rank KPTransfer sources, and
read/write `mi.json`, `groups.json` and the heat map."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from kpt_tf.grouping.clustering import body_groups, group_name, mi_groups
from kpt_tf.grouping.locations import read_locations
from kpt_tf.grouping.mutual_information import MIMatrix, mi_matrix
from kpt_tf.joints import MPII16, JointSubset
from kpt_tf.layouts import KeypointLayout

MI_JSON, GROUPS_JSON, MI_PNG = "mi.json", "groups.json", "mi.png"


def estimate(data, joints="all", bins: int = 6, bootstrap: int = 30, seed: int = 0, log=print) -> MIMatrix:
    """The MI of the `joints` subset's locations in `data`'s training people; the subset must be of the data's
    keypoint layout (its indices pick the data's columns)."""
    subset = JointSubset.parse(joints)
    started = time.time()
    loc = read_locations(data)
    if subset.layout != loc.layout:
        raise ValueError(f"joints {subset.qualified_name} are of layout {subset.layout.name}, but {loc.source} "
                         f"holds {loc.layout.dataset} people (layout {loc.layout.name}): give joints of its layout")
    idx = list(subset.indices)
    log(f"[grouping] {loc.xy.shape[0]} training people from {loc.source}"
        + (f" ({loc.skipped} without centre or scale skipped)" if loc.skipped else ""))
    mi = mi_matrix(loc.xy[:, idx], loc.annotated[:, idx], subset.names, bins=bins, bootstrap=bootstrap, seed=seed)
    mi.source = loc.source
    log(f"[grouping] MI of {len(idx) * (len(idx) - 1) // 2} pairs in {time.time() - started:.1f} s")
    return mi


def make_groups(mi: MIMatrix, num_groups: int, method: str, joints="all") -> dict:
    """{"groups": [[joint names]], "names": [...], "method", ...} (the content of groups.json)."""
    subset = JointSubset.parse(joints)
    if list(subset.names) != list(mi.joints):
        raise ValueError(f"the MI matrix is of {mi.joints}, not of the subset {subset.name}")
    if method == "mi":
        affinity = mi.mi.copy()
        np.fill_diagonal(affinity, 0.0)        # entropies are not affinities (agglomerate refuses NaN pairs)
        positions = mi_groups(affinity, num_groups)
    elif method == "body":
        positions = body_groups(subset, num_groups)
    else:
        raise ValueError(f"--method must be mi or body, not {method!r}")
    groups = [[subset.names[k] for k in g] for g in positions]
    within = [float(np.mean([mi.mi[a, b] for a in g for b in g if a < b])) if len(g) > 1 else None
              for g in positions]
    return {"groups": groups, "names": [group_name(g, subset.layout) for g in groups], "method": method,
            "num_groups": num_groups, "joints": list(subset.names), "mean_mi_within": within,
            "source": mi.source}


def load_groups(spec, layout: KeypointLayout = MPII16) -> list[tuple[str, list[str]]]:
    """(name, joint names) per group from a groups.json path, or an inline list of joint lists or of
    {"name", "joints"} dicts (config `model.groups`); an unnamed group is named from its joints in `layout`."""
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"groups file {path} does not exist (write one with `python -m kpt_tf.grouping`)")
        d = json.loads(path.read_text())
        names = d.get("names") or [group_name(g, layout) for g in d["groups"]]
        return list(zip(names, [list(g) for g in d["groups"]]))
    out = []
    for g in spec:
        if isinstance(g, dict) or hasattr(g, "joints"):
            out.append((str(g["name"]), [str(j) for j in g["joints"]]))
        else:
            joints = [str(j) for j in g]
            out.append((group_name(joints, layout), joints))
    return out


def rank_sources(mi: MIMatrix, target: str, candidates, layout: "KeypointLayout | str | None" = None) -> dict:
    """Rank candidate source subsets for transfer into `target`: score = mean, over the target's joints that the
    source lacks, of the highest MI between that joint and any source joint (how much the best-informed source
    joint says about each new joint). Higher first. Specs are read against `layout` (the MI's; MPII's when not
    given); joints the MI does not hold are refused."""
    names = list(mi.joints)
    target_subset = _subset_in(mi, target, layout)
    rows = []
    for spec in candidates:
        source = _subset_in(mi, spec, layout)
        new = [j for j in target_subset.names if j not in source.names]
        if not new:
            raise ValueError(f"candidate {spec} already has every joint of {target}: nothing to transfer into")
        best = [max(mi.mi[names.index(t), names.index(s)] for s in source.names) for t in new]
        rows.append({"source": spec, "score": float(np.mean(best)), "new_joints": new,
                     "best_mi_per_joint": dict(zip(new, map(float, best)))})
    rows.sort(key=lambda r: -r["score"])
    return {"target": target, "ranking": rows,
            "score": "mean over the target's new joints of the highest MI (bits) with any source joint"}


def _subset_in(mi: MIMatrix, spec: str, layout) -> JointSubset:
    subset = JointSubset.parse(spec, layout)
    missing = [j for j in subset.names if j not in mi.joints]
    if missing:
        raise ValueError(f"{spec} ({subset.qualified_name}) has joints the MI matrix lacks: {', '.join(missing)}")
    return subset


def format_ranking(ranking: dict) -> str:
    lines = [f"KPTransfer sources for {ranking['target']} ({ranking['score']}):"]
    for k, r in enumerate(ranking["ranking"], 1):
        lines.append(f"  {k}. {r['source']:<24} {r['score']:.3f} bits")
    return "\n".join(lines)


def plot_mi(mi: MIMatrix, groups: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    order = [mi.joints.index(j) for g in groups["groups"] for j in g]
    m = mi.mi[np.ix_(order, order)].copy()
    np.fill_diagonal(m, np.nan)   # entropies would swamp the colour scale
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(m, cmap="viridis")
    labels = [mi.joints[i] for i in order]
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    start = 0
    for g in groups["groups"]:
        ax.add_patch(Rectangle((start - 0.5, start - 0.5), len(g), len(g), fill=False, edgecolor="red", lw=2))
        start += len(g)
    fig.colorbar(im, ax=ax, label="MI (bits)")
    ax.set_title(f"MI of joint locations ({mi.people} people); {groups['method']} groups outlined")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_outputs(out: Path, mi: MIMatrix, groups: dict) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / MI_JSON).write_text(json.dumps(mi.to_json(), indent=1))
    (out / GROUPS_JSON).write_text(json.dumps(groups, indent=1))
    return [out / MI_JSON, out / GROUPS_JSON, plot_mi(mi, groups, out / MI_PNG)]

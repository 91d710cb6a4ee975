"""Markdown table of runs/regime2/results.jsonl."""
import json
from pathlib import Path

G = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean"]
print("| run | delta | steps x batch | fit s | " + " | ".join(G) + " | baseline mean | curve |")
print("|---" * (6 + len(G)) + "|")
for line in Path("runs/regime2/results.jsonl").read_text().splitlines():
    d = json.loads(line)
    v = d["val_hrnet"]
    cells = [("" if v.get(g) is None else f"{v[g]:.1f}") for g in G]
    delta = " ".join(o for o in d["overrides"] if not o.startswith(("train.optimizer", "train.schedule",
                                                                      "train.warmup")))
    print(f"| {d['name']} | {delta} | {d['epochs'] * d['steps_per_epoch']} x {d['batch']} | {d['fit_s']:.0f} | "
          + " | ".join(cells) + f" | {d['baseline_hrnet']['Mean']:.1f} | {', '.join(map(str, d['curve']))} |")

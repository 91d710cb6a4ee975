"""Train one setting and score it: python exp2/run.py NAME DATA_DIR [key=value ...]

configs/demo.py + overrides -> runs/regime2/NAME; appends one JSON line to runs/regime2/results.jsonl (curve,
per-group PCKh of best.keras with flip test, the mean-pose baseline, wall time, s/step)."""
import ast, json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from pathlib import Path
name, data, *kvs = sys.argv[1:]
from configs.demo import get_config
from kpt_tf import evaluate
from kpt_tf.metrics import pckh
from kpt_tf.training import loop
c = get_config(); c.data.dir = data
for kv in kvs:
    k, v = kv.split("=", 1); node = c; ps = k.split(".")
    for p in ps[:-1]: node = node[p]
    try: val = ast.literal_eval(v)
    except Exception: val = v
    node[ps[-1]] = val
wd = Path("runs/regime2") / name
t0 = time.time(); s = loop.train(c, wd, verbose=0); wall = time.time() - t0
res = evaluate.evaluate_model(wd / "best.keras", data, split="val", config=c)
hr = pckh.hrnet_table(res["counts"])
base = pckh.hrnet_table(evaluate.mean_pose_baseline(c)["counts"])
h = s["history"]
out = {"name": name, "data": data, "overrides": kvs, "wall_s": round(wall, 1), "fit_s": s["seconds"],
       "epochs": s["epochs"], "steps_per_epoch": s["steps_per_epoch"], "batch": int(c.train.batch_size),
       "curve": [round(e["mean"], 1) for e in h], "epoch_end_s": [round(e["seconds"], 1) for e in h],
       "val_hrnet": hr, "baseline_hrnet": base, "end": time.strftime("%H:%M:%S")}
Path("runs/regime2").mkdir(parents=True, exist_ok=True)
with open("runs/regime2/results.jsonl", "a") as f: f.write(json.dumps(out) + "\n")
fmt = lambda t: " ".join(f"{k[:5]}={v:.1f}" for k, v in t.items() if v is not None)
print("RESULT", name, "fit", s["seconds"], "curve", out["curve"]); print("  val ", fmt(hr)); print("  base", fmt(base))

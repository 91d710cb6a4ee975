r"""What a trained network costs where it is deployed: batch-1 latency, file size and PCKh for the SavedModel, the
SavedModel with `--xla`, and TFLite float32 / float16 / dynamic / int8 (LiteRT, XNNPACK, threads = cores).

    .venv/bin/python -m bench.deploy --models demo=runs/demo/train --data runs/demo/data/records
    .venv/bin/python -m bench.deploy \
        --models student=config:configs/fpd_student_4x128.py,teacher=config:configs/hg8_256.py
    .venv/bin/python -m bench.deploy --tiny          # seconds: what the suite runs so the script cannot rot

`--models`: label=PATH pairs; PATH is a training workdir or a `.keras` file, or `config:FILE` for an untrained network
of that config (latency and size only: its PCKh means nothing). Every format runs the network alone on one crop
(no flip test, no decoding: those are the same work in every format). Each model's formats are warmed up, then
called --repeats rounds, one call of each format per round in turn, so load from elsewhere hits all alike; the
table gives medians and the ratio to the plain SavedModel of the same model. PCKh (no flip test, HRNet convention)
is measured on --data's validation split through `kpt_tf.evaluate` for every format. Results in BUILD_NOTES.md,
"TFLite", with the machine (`lscpu`).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from absl import app, flags

from bench.machine import cpu_model
from bench.untrained import as_workdir, tiny_workdir

flags.DEFINE_list("models", [], "label=PATH pairs (workdir, .keras, or config:FILE for an untrained network).")
flags.DEFINE_string("data", None, "Records directory: PCKh on its val split, and int8 calibration crops.")
flags.DEFINE_list("formats", ["savedmodel", "savedmodel_xla", "tflite_none", "tflite_float16", "tflite_dynamic",
                              "tflite_int8"], "Formats to compare.")
flags.DEFINE_integer("repeats", 30, "Timed rounds (median reported).")
flags.DEFINE_string("json", None, "Also write the results here.")
flags.DEFINE_bool("tiny", False, "A tiny random network, 3 rounds, no PCKh: checks the script runs.")
FLAGS = flags.FLAGS


def exported(label: str, model: Path, formats: list, scratch: Path) -> dict:
    """format -> (path of the exported file or directory, its size in bytes)."""
    from kpt_tf.export import export_workdir, export_workdir_tflite
    from kpt_tf.workdir import ExportOptions

    out = {}
    for name in formats:
        if name.startswith("savedmodel"):
            path = export_workdir(model, scratch / f"{label}_{name}",
                                  options=ExportOptions(flip_test=False, xla=name.endswith("_xla")))
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        else:
            quantize = name.split("_", 1)[1]
            if quantize == "int8" and not FLAGS.data:
                print(f"  {label}: tflite_int8 skipped (needs --data for calibration crops)", flush=True)
                continue
            path = export_workdir_tflite(model, scratch / f"{label}_{name}.tflite", quantize=quantize,
                                         calibration_data=FLAGS.data)
            size = path.stat().st_size
        out[name] = (path, size)
        print(f"  {label}: {name} exported ({size / 1e6:.1f} MB)", flush=True)
    return out


def latency(files: dict, input_size: int, repeats: int) -> dict:
    """format -> median seconds of one batch-1 call, formats called in turn each round."""
    import numpy as np

    from kpt_tf.predict import Predictor

    crop = np.random.default_rng(0).uniform(0, 255, (1, input_size, input_size, 3)).astype(np.float32)
    calls = {name: Predictor.load(path, flip_test=False, num_threads=os.cpu_count()).heatmaps
             for name, (path, _) in files.items()}
    for call in calls.values():
        for _ in range(3):
            np.asarray(call(crop))
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            np.asarray(call(crop))
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def pckh_of(path) -> float | None:
    from kpt_tf.evaluate import evaluate_model

    if not FLAGS.data:
        return None
    return float(evaluate_model(path, FLAGS.data, "val", flip_test=False)["mean"])


def main(argv):
    del argv
    from kpt_tf.trained import load_trained

    with tempfile.TemporaryDirectory(prefix="bench_deploy_") as tmp:
        scratch = Path(tmp)
        if FLAGS.tiny:
            specs = {"tiny": str(tiny_workdir(scratch))}
            formats = ["savedmodel", "tflite_none", "tflite_dynamic"]
            repeats = 3
        else:
            specs = dict(item.split("=", 1) for item in FLAGS.models)
            formats, repeats = FLAGS.formats, FLAGS.repeats
        if not specs:
            raise app.UsageError("--models label=PATH[,label=PATH...] or --tiny")
        rows = []
        for label, spec in specs.items():
            model = as_workdir(label, spec, scratch)
            trained = load_trained(model)
            input_size = int(trained.net.inputs[0].shape[1])
            files = exported(label, model, formats, scratch)
            medians = latency(files, input_size, repeats)
            trained_model = not spec.startswith("config:") and not FLAGS.tiny
            for name, (path, size) in files.items():
                rows.append({"model": label, "format": name, "batch1_ms": 1e3 * medians[name], "mb": size / 1e6,
                             "pckh": pckh_of(path) if trained_model else None,
                             "vs_savedmodel": medians[name] / medians["savedmodel"] if "savedmodel" in medians
                             else None})
    print(f"\nDeployment on {cpu_model()}, {os.cpu_count()} logical CPUs; batch 1, network only (no flip test), "
          f"median of {repeats} rounds, formats called in turn:")
    print(f"{'model':<14}{'format':<17}{'batch-1 ms':>11}{'x SavedModel':>14}{'MB':>8}{'PCKh@0.5':>10}")
    for r in rows:
        ratio = f"{r['vs_savedmodel']:.2f}" if r["vs_savedmodel"] is not None else "-"
        pckh = f"{r['pckh']:.2f}" if r["pckh"] is not None else "-"
        print(f"{r['model']:<14}{r['format']:<17}{r['batch1_ms']:>11.2f}{ratio:>14}{r['mb']:>8.1f}{pckh:>10}")
    labels = list(dict.fromkeys(r["model"] for r in rows))
    if len(labels) == 2:
        best = {}
        for r in rows:
            best.setdefault(r["format"], {})[r["model"]] = r
        print(f"\n{labels[0]} / {labels[1]} per format (latency ratio, PCKh kept):")
        for name, pair in best.items():
            if len(pair) == 2:
                a, b = pair[labels[0]], pair[labels[1]]
                kept = f"{100 * a['pckh'] / b['pckh']:.1f} %" if a["pckh"] and b["pckh"] else "-"
                print(f"  {name:<17}{a['batch1_ms'] / b['batch1_ms']:.3f}x   {kept}")
    if FLAGS.json:
        Path(FLAGS.json).write_text(json.dumps({"machine": cpu_model(), "cpus": os.cpu_count(), "rows": rows},
                                               indent=1))


if __name__ == "__main__":
    from kpt_tf import cli

    cli.run(main, "bench.deploy")

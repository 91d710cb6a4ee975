r"""Memory and time of the served graph on large images: what one request costs beyond its own input.

    .venv/bin/python -m bench.serving_memory                  # 1, 4, 16 and 36 Mpx images, one person each
    .venv/bin/python -m bench.serving_memory --sizes 1000     # seconds: what CI runs so the script cannot rot

A small random-initialised hourglass is exported once (the network's cost does not depend on the image); each
image size is then served in a fresh process (peak RSS, `ru_maxrss`, only grows): the process loads the
SavedModel, serves a small image (tracing and allocator warm-up), builds the large uint8 input tensor, and
serves it through `serving_default` with one box. The table gives the peak RSS growth caused by serving the
large image, as a multiple of the input's own bytes (the baseline: what the caller already holds), and the
median serve time of the timed repeats. The graph keeps one float16 copy of the image (2 bytes per channel
value against the input's 1; the allocator reuses the freed numpy source, so the measured growth is ~1 x);
the float32 copy and int32 brightness check it replaced measured 6.6-7 x (BUILD_NOTES).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import flags

flags.DEFINE_list("sizes", ["1000", "2000", "4000", "6000"], "Square image sides to serve (pixels).")
flags.DEFINE_integer("repeats", 3, "Timed serves per size (median).")
FLAGS = flags.FLAGS

_CHILD = r"""
import json, resource, sys, time
import numpy as np, tensorflow as tf
path, side, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
serve = tf.saved_model.load(path).signatures["serving_default"]
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
small = tf.constant(np.full((1, 200, 200, 3), 128, np.uint8))
serve(images=small, boxes=tf.constant([[20.0, 20.0, 180.0, 180.0]]))
image = tf.constant(np.random.default_rng(0).integers(0, 256, (1, side, side, 3), dtype=np.uint8))
box = tf.constant([[0.1 * side, 0.1 * side, 0.9 * side, 0.9 * side]])
before = peak_mb()
times = []
for _ in range(repeats):
    start = time.perf_counter()
    serve(images=image, boxes=box)["keypoints"].numpy()
    times.append(time.perf_counter() - start)
print(json.dumps({"side": side, "input_mb": side * side * 3 / 2**20, "peak_growth_mb": peak_mb() - before,
                  "seconds": sorted(times)[len(times) // 2]}))
"""


def export_small_network(out_dir: str) -> str:
    from kpt_tf.codec import HeatmapCodec
    from kpt_tf.export import export_net
    from kpt_tf.joints import JointSubset
    from kpt_tf.models.hourglass import build_hourglass
    from kpt_tf.workdir import ExportOptions

    net = build_hourglass(1, 32, 16, input_size=128)
    return str(export_net(net, HeatmapCodec(input_size=128, heatmap_size=32, sigma=2.0), JointSubset.parse("all"),
                          f"{out_dir}/sm", ExportOptions(flip_test=False)))


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as tmp:
        savedmodel = export_small_network(tmp)
        rows = []
        for side in map(int, FLAGS.sizes):
            done = subprocess.run([sys.executable, "-c", _CHILD, savedmodel, str(side), str(FLAGS.repeats)],
                                  capture_output=True, text=True, timeout=1800,
                                  env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
            if done.returncode != 0:
                raise SystemExit(f"serving a {side} x {side} image failed:\n{done.stderr[-2000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"served {side} x {side}", file=sys.stderr, flush=True)
    print(f"{'image':>13} {'input MB':>9} {'peak growth MB':>15} {'x input':>8} {'serve s':>8}")
    for r in rows:
        print(f"{r['side']:>6} x {r['side']:<6}{r['input_mb']:>9.1f} {r['peak_growth_mb']:>15.1f} "
              f"{r['peak_growth_mb'] / r['input_mb']:>8.2f} {r['seconds']:>8.3f}")
    print(f"median serve time per megapixel: "
          f"{statistics.median(r['seconds'] / (r['side'] ** 2 / 1e6) for r in rows):.4f} s ({time.strftime('%F')})")


if __name__ == "__main__":
    from kpt_tf import cli

    cli.run(main, "bench.serving_memory")

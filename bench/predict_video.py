r"""`kpt_tf.predict` on a video: frames per second, where the time goes (reading, person boxes, network, drawing and
writing), and the network alone on the same people for comparison.

    .venv/bin/python -m bench.predict_video --model runs/demo/train
    .venv/bin/python -m bench.predict_video --model runs/demo/train --video clip.mp4
    .venv/bin/python -m bench.predict_video --tiny           # seconds: what the suite runs so the script cannot rot

Without --video, a clip is made from the five real MPII photographs (../shared/mpii/images, each shown for
--frames_per_photo frames at 640 x 360), or from random pixels when that folder is absent. The clip runs once with
`--detector hog` and once with `--detector none`; then the network alone is timed on the crops of the `none` run's
people, in batches as predict sends them.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from absl import app, flags

flags.DEFINE_string("model", None, "A trained model (workdir, .keras, export or .tflite).")
flags.DEFINE_string("video", None, "A video file (default: a clip made from the real MPII photographs).")
flags.DEFINE_integer("frames_per_photo", 12, "Frames each photograph is shown in the made clip.")
flags.DEFINE_bool("tiny", False, "An untrained tiny network and a 10-frame clip: checks the script runs.")
FLAGS = flags.FLAGS

SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "mpii" / "images"


def make_clip(path: Path, frames_per_photo: int) -> Path:
    import cv2
    import numpy as np

    photos = sorted(SHARED_IMAGES.glob("*.jpg")) if SHARED_IMAGES.is_dir() else []
    frames = [cv2.resize(cv2.imread(str(p)), (640, 360), interpolation=cv2.INTER_AREA) for p in photos]
    if not frames:
        frames = [np.random.default_rng(k).integers(0, 256, (360, 640, 3)).astype(np.uint8) for k in range(5)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 360))
    for frame in frames:
        for _ in range(frames_per_photo):
            writer.write(frame)
    writer.release()
    return path


def main(argv):
    del argv
    import numpy as np

    from kpt_tf.detect import make_detector
    from kpt_tf.predict import Predictor, predict_files

    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        tmp = Path(tmp)
        model = FLAGS.model
        if FLAGS.tiny:
            from bench.untrained import tiny_workdir

            model = tiny_workdir(tmp)
        if not model:
            raise app.UsageError("--model (or --tiny)")
        video = Path(FLAGS.video) if FLAGS.video else make_clip(tmp / "clip.mp4", 2 if FLAGS.tiny else
                                                                 FLAGS.frames_per_photo)
        predictor = Predictor.load(model)
        size = predictor.input_size
        for batch in (1, 2, 3, predictor.batch_size):   # tracing for any batch size happens here, not in the table
            np.asarray(predictor.heatmaps(np.zeros((batch, size, size, 3), np.float32)))
        rows = {}
        for detector in ("hog", "none"):
            result = predict_files(predictor, [video], tmp / f"out_{detector}", detector=make_detector(detector),
                                   progress=False)
            rows[detector] = result["summary"]
        # The network alone on the `none` run's people (whole frames), batched as predict batches them.
        import cv2

        capture = cv2.VideoCapture(str(video))
        frames = []
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        capture.release()
        crops = np.concatenate([predictor.crops(f, np.array([[0, 0, f.shape[1] - 1, f.shape[0] - 1]],
                                                            np.float32))[0] for f in frames])
        for start in range(0, min(len(crops), predictor.batch_size * 2), predictor.batch_size):   # warm-up
            np.asarray(predictor.heatmaps(crops[start:start + predictor.batch_size]))
        started = time.perf_counter()
        for start in range(0, len(crops), predictor.batch_size):
            np.asarray(predictor.heatmaps(crops[start:start + predictor.batch_size]))
        network_alone = time.perf_counter() - started

    print(f"\nkpt_tf.predict on {video.name if FLAGS.video else 'a 640 x 360 clip'} ({len(frames)} frames), model "
          f"{predictor.description}, {os.cpu_count()} logical CPUs:")
    print(f"{'detector':<10}{'frames/s':>10}{'people':>8}{'read s':>8}{'boxes s':>9}{'network s':>11}"
          f"{'draw+write s':>14}{'outside network':>17}")
    for name, s in rows.items():
        stage = s["seconds_by_stage"]
        outside = 1 - stage["network"] / s["seconds"] if s["seconds"] else float("nan")
        print(f"{name:<10}{s['frames_per_second']:>10.2f}{s['people']:>8}{stage['read']:>8.2f}{stage['boxes']:>9.2f}"
              f"{stage['network']:>11.2f}{stage['draw_write']:>14.2f}{100 * outside:>16.0f}%")
    print(f"network alone on the {len(crops)} whole-frame people: {len(crops) / network_alone:.2f} people/s "
          f"({network_alone:.2f} s); HOG detector {1e3 * rows['hog']['seconds_by_stage']['boxes'] / len(frames):.0f} "
          "ms a frame")


if __name__ == "__main__":
    from kpt_tf import cli

    cli.run(main, "bench.predict_video")

r"""The README's picture of real photographs: a trained model through `kpt_tf.predict` on the five real MPII
photographs in ../shared/mpii/images, once with OpenCV's HOG people detector (what a user gets with no boxes) and
once with the annotated people's boxes (MPII's centre and scale, as a COCO detection-results file), side by side.

    .venv/bin/python -m tools.real_photos_figure --model runs/demo/train --out docs/predict_real_photos.jpg
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from absl import app, flags


def define_flags():
    """The CLI flags; defined only when run as a program, so that importing this module (tests, other tools)
    never collides with another module's flags of the same name (absl flags are global)."""
    flags.DEFINE_string("model", None, "A trained model (workdir, .keras, export or .tflite).")
    flags.DEFINE_string("out", "docs/predict_real_photos.jpg", "The picture to write.")
    flags.DEFINE_string("shared", str(Path(__file__).resolve().parents[1].parent / "shared" / "mpii"),
                        "The shared MPII folder (images/ and mmpose_test_mpii.json).")
    flags.DEFINE_integer("tile_height", 240, "Height of each photograph in the picture.")


FLAGS = flags.FLAGS


def annotated_boxes(people: list) -> list:
    """COCO detection results for MPII people: the adjusted person box (kpt_tf.geometry) around each one."""
    import numpy as np

    from kpt_tf import geometry

    entries = []
    for person in people:
        # mmpose's centre is 1-based (BUILD_NOTES, HRNet/mmpose json): 0-based objpos first, then MPII's adjustment
        center, scale = geometry.adjust_person_box(np.asarray(person["center"]) - 1.0, person["scale"])
        side = geometry.PERSON_BOX_PIXELS * scale / geometry.BOX_PADDING
        entries.append({"image_id": int(Path(person["image"]).stem), "category_id": 1, "score": 1.0,
                        "bbox": [float(center[0] - side / 2), float(center[1] - side / 2), float(side), float(side)]})
    return entries


def main(argv):
    del argv
    import cv2
    import numpy as np

    from kpt_tf.detect import BoxesFile, make_detector
    from kpt_tf.predict import Predictor, predict_files

    if not FLAGS.model:
        raise app.UsageError("--model is required")
    shared = Path(FLAGS.shared)
    people = json.loads((shared / "mmpose_test_mpii.json").read_text())
    images = sorted((shared / "images").glob("*.jpg"))
    predictor = Predictor.load(FLAGS.model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "boxes.json").write_text(json.dumps(annotated_boxes(people)))
        for name, kwargs in (("hog", {"detector": make_detector("hog")}),
                             ("annotated", {"boxes_file": BoxesFile(tmp / "boxes.json")})):
            predict_files(predictor, images, tmp / name, progress=False, **kwargs)
            tiles = []
            for path in images:
                drawn = cv2.imread(str(tmp / name / f"{path.stem}.jpg"))
                width = round(drawn.shape[1] * FLAGS.tile_height / drawn.shape[0])
                tiles.append(cv2.resize(drawn, (width, FLAGS.tile_height), interpolation=cv2.INTER_AREA))
            row = np.concatenate(tiles, axis=1)
            label = "HOG people detector boxes" if name == "hog" else "annotated person boxes"
            cv2.putText(row, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
            rows.append(row)
    width = min(r.shape[1] for r in rows)
    picture = np.concatenate([r[:, :width] for r in rows], axis=0)
    Path(FLAGS.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(FLAGS.out, picture, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {FLAGS.out} ({picture.shape[1]} x {picture.shape[0]})")


if __name__ == "__main__":
    define_flags()
    from kpt_tf import cli

    cli.run(main, "tools.real_photos_figure")

r"""Run a trained pose model on photos and videos: `python -m kpt_tf.predict --model M --input IN --out DIR`.

    python -m kpt_tf.predict --model runs/demo/export --input photos/ --out runs/predicted
    python -m kpt_tf.predict --model runs/demo --input clip.mp4 --out runs/clip --detector hog
    python -m kpt_tf.predict --model hg.tflite --input 'val2017/*.jpg' --boxes detections.json --out runs/coco

`--model`: an export (SavedModel), a training workdir, a `.keras` file or a `.tflite` file (kpt_tf.export
--format tflite). `--input`: an image, a folder of images, a glob, or a video (any container OpenCV reads).
Person boxes, first that applies: `--boxes` (COCO detection results, kpt_tf.detect.BoxesFile), else `--detector`
(`hog`: OpenCV's people detector; `none`: the whole image is the person). Writes `DIR/<input stem>.jpg` (a video:
`.mp4`, its frame rate and size kept) with the skeletons drawn, and `DIR/predictions.json`: per image (per video
frame) the file, and per person its box, box score, `keypoints` [J, 2] in the input's pixels, `scores` [J] and the
joint names. An unreadable image or frame is a counted skip naming it; a refused boxes file stops before anything
is written.

Python: `Predictor.load(model).predict(rgb_image, boxes=None)` -> a list of `Person`.

One path for every kind of model: person box -> crop (kpt_tf.geometry, as the exported serving graph cuts it) ->
the model's final heatmaps (flip test included) -> decode (the model's codec) -> image pixels.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from kpt_tf import geometry
from kpt_tf.joints import JointSubset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
PREDICTIONS = "predictions.json"
DEFAULT_BATCH = 16
# Joints whose heatmap maximum is below this are drawn faint (the network's targets peak at 1.0).
DEFAULT_FAINT_BELOW = 0.2


@dataclasses.dataclass
class Person:
    """One predicted person: box (x1, y1, x2, y2) and keypoints [J, 2] in the input image's pixels."""

    box: np.ndarray
    box_score: float
    keypoints: np.ndarray
    scores: np.ndarray
    joint_names: tuple

    def to_json(self) -> dict:
        return {"box": [round(float(v), 2) for v in self.box], "box_score": round(float(self.box_score), 4),
                "keypoints": [[round(float(x), 2), round(float(y), 2)] for x, y in self.keypoints],
                "scores": [round(float(s), 4) for s in self.scores], "joint_names": list(self.joint_names)}


class Predictor:
    """A trained model behind one interface: RGB images and person boxes in, `Person`s out."""

    def __init__(self, heatmaps, codec, joints: JointSubset, input_size: int, description: str,
                 batch_size: int = DEFAULT_BATCH):
        self.heatmaps = heatmaps        # float32 crops [N, S, S, 3] (0..255) -> final heatmaps [N, h, w, J]
        self.codec = codec
        self.joints = joints
        self.input_size = int(input_size)
        self.description = description
        self.batch_size = int(batch_size)

    @classmethod
    def load(cls, model, which: str = "best", flip_test: bool = True, batch_size: int = DEFAULT_BATCH,
             num_threads: int | None = None) -> "Predictor":
        """From an export, a training workdir (its `which` model), a `.keras` file or a `.tflite` file. A
        SavedModel's flip test was fixed when it was exported; the others use `flip_test` when the joints allow."""
        from kpt_tf.trained import load_trained

        path = Path(model)
        if path.suffix == ".tflite":
            return cls._load_tflite(path, flip_test, batch_size, num_threads)
        trained = load_trained(path, which)
        joints = trained.joints
        if joints is None:
            raise ValueError(f"--model {path}: no config.json beside it, so its joints are unknown")
        if trained.savedmodel is not None:
            size = int(trained.metadata.input_size)
            described = f"SavedModel {path} (flip test {'on' if trained.metadata.flip_test else 'off'})"
        else:
            size = int(trained.net.inputs[0].shape[1])
            described = f"{trained.kind} {trained.path}"
        return cls(trained.heatmaps_fn(flip_test), trained.codec(), joints, size, described, batch_size)

    @classmethod
    def _load_tflite(cls, path: Path, flip_test: bool, batch_size: int, num_threads: int | None):
        from kpt_tf.codec import HeatmapCodec
        from kpt_tf.inference import flip_permutation_or_none
        from kpt_tf.tflite import TFLiteNetwork

        network = TFLiteNetwork(path, num_threads)
        joints = network.metadata.joint_subset()
        permutation = flip_permutation_or_none(joints, flip_test)

        def heatmaps(crops):
            out = network(crops)
            if permutation is not None:
                mirrored = network(np.ascontiguousarray(np.asarray(crops)[:, :, ::-1]))
                out = 0.5 * (out + np.asarray(HeatmapCodec.flip_back(mirrored, permutation)))
            return out

        described = (f"TFLite {path} (quantize {network.metadata.quantize}, flip test "
                     f"{'on' if permutation is not None else 'off'})")
        return cls(heatmaps, network.metadata.codec(), joints, network.metadata.input_size, described, batch_size)

    # --- prediction ---------------------------------------------------------------------------------------
    def crops(self, rgb: np.ndarray, boxes: np.ndarray):
        """(crops float32 [N, S, S, 3], image -> crop affines [N, 2, 3]) of an RGB image's person boxes."""
        centers, scales = geometry.box_center_scale(boxes)
        affines = geometry.crop_affine(centers, scales, self.input_size)
        crops = [cv2.warpAffine(rgb, m, (self.input_size, self.input_size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0) for m in affines]
        return np.asarray(crops, np.float32).reshape(-1, self.input_size, self.input_size, 3), affines

    def predict(self, rgb: np.ndarray, boxes=None, box_scores=None) -> list[Person]:
        """People of one RGB uint8 image [H, W, 3]; `boxes` [N, 4] x1, y1, x2, y2 (None: the whole image)."""
        return self.predict_many([rgb], [boxes], [box_scores])[0]

    def predict_many(self, images, boxes_per_image, scores_per_image=None) -> list[list[Person]]:
        """People of several images, their crops run through the network `batch_size` at a time."""
        scores_per_image = scores_per_image or [None] * len(images)
        crops, affines, owners, all_boxes, all_scores = [], [], [], [], []
        for k, (rgb, boxes, scores) in enumerate(zip(images, boxes_per_image, scores_per_image)):
            rgb = _check_image(rgb)
            if boxes is None:
                height, width = rgb.shape[:2]
                boxes = np.array([[0, 0, width - 1, height - 1]], np.float32)
            boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
            if not np.all(np.isfinite(boxes)) or np.any(boxes[:, 2] <= boxes[:, 0]) or \
                    np.any(boxes[:, 3] <= boxes[:, 1]):
                raise ValueError(f"boxes must be finite x1, y1, x2, y2 with x2 > x1 and y2 > y1, got {boxes.tolist()}")
            sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            if np.any(sides > geometry.MAX_BOX_TO_IMAGE * max(rgb.shape[:2])):
                raise ValueError(f"a box is more than {geometry.MAX_BOX_TO_IMAGE:g} times as large as its "
                                 f"{rgb.shape[1]} x {rgb.shape[0]} image: {boxes[np.argmax(sides)].tolist()}")
            scores = np.ones(len(boxes), np.float32) if scores is None else np.asarray(scores, np.float32)
            if len(boxes):
                c, a = self.crops(rgb, boxes)
                crops.append(c)
                affines.append(a)
            owners.extend([k] * len(boxes))
            all_boxes.extend(boxes)
            all_scores.extend(scores.reshape(-1))
        people: list[list[Person]] = [[] for _ in images]
        if not owners:
            return people
        crops, affines = np.concatenate(crops), np.concatenate(affines)
        keypoints, joint_scores = [], []
        for start in range(0, len(crops), self.batch_size):
            heatmaps = self.heatmaps(crops[start:start + self.batch_size])
            input_joints, scores = self.codec.decode(heatmaps)
            keypoints.append(np.asarray(input_joints, np.float64))
            joint_scores.append(np.asarray(scores))
        keypoints = geometry.apply_affine_batch(geometry.invert_affine(affines), np.concatenate(keypoints))
        joint_scores = np.concatenate(joint_scores)
        for k, owner in enumerate(owners):
            people[owner].append(Person(box=np.asarray(all_boxes[k]), box_score=float(all_scores[k]),
                                        keypoints=keypoints[k], scores=joint_scores[k], joint_names=self.joints.names))
        return people


def _check_image(rgb) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"an image must be RGB uint8 [H, W, 3], got {rgb.dtype} {list(rgb.shape)}")
    return rgb


# --- inputs ---------------------------------------------------------------------------------------------------

def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def resolve_inputs(spec: str) -> list[Path]:
    """An image or video file, a folder (its images, sorted) or a glob -> the files to run on."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        if not files:
            raise ValueError(f"--input {spec}: a folder with no image or video ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if path.is_file():
        return [path]
    if glob.has_magic(spec):
        files = sorted(Path(p) for p in glob.glob(spec) if Path(p).is_file())
        if not files:
            raise ValueError(f"--input {spec}: the pattern matches no file")
        return files
    raise FileNotFoundError(f"--input {spec}: does not exist")


def read_image(path: Path):
    """RGB uint8, or None when OpenCV cannot decode the file."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# --- the command --------------------------------------------------------------------------------------------

class Run:
    """One `kpt_tf.predict` run: boxes, batching over images and frames, drawing, the json, progress, the summary."""

    def __init__(self, predictor: Predictor, out_dir: Path, boxes_file=None, detector=None,
                 box_score_threshold: float = 0.0, iou_threshold: float = 0.3, draw: bool = True,
                 faint_below: float = DEFAULT_FAINT_BELOW, progress: bool = True):
        self.predictor = predictor
        self.out_dir = out_dir
        self.boxes_file = boxes_file
        self.detector = detector
        self.box_score_threshold = box_score_threshold
        self.iou_threshold = iou_threshold
        self.draw = draw
        self.faint_below = faint_below
        self.progress = progress
        self.records: list[dict] = []
        self.skipped: list[dict] = []
        self.frames = 0
        self.people = 0
        self.seconds = {"read": 0.0, "boxes": 0.0, "network": 0.0, "draw_write": 0.0}

    def boxes(self, name: str, rgb: np.ndarray):
        from kpt_tf.detect import suppress

        started = time.perf_counter()
        boxes, scores = self.boxes_file.boxes_for(name) if self.boxes_file is not None else self.detector(rgb)
        boxes, scores = suppress(boxes, scores, self.box_score_threshold, self.iou_threshold)
        self.seconds["boxes"] += time.perf_counter() - started
        return boxes, scores

    def drawn(self, rgb: np.ndarray, people: list[Person]) -> np.ndarray:
        from kpt_tf.visualize import draw_skeleton

        for person in people:
            rgb = draw_skeleton(rgb, person.keypoints, self.predictor.joints, person.scores,
                                faint_below=self.faint_below, box=person.box)
        return rgb

    def bar(self, total: int | None, desc: str, unit: str):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, disable=not self.progress, file=sys.stderr, mininterval=2.0)

    def run_frames(self, frames, bar, sink=None, video: bool = False) -> None:
        """`frames` yields (file name, frame index, rgb or None); the people of several images or frames go through
        the network together (`batch_size` of them a call); `sink(name, index, drawn rgb)` writes each result."""
        pending: list[tuple] = []
        people_pending = 0

        def flush():
            if not pending:
                return
            started = time.perf_counter()
            people = self.predictor.predict_many([p[2] for p in pending], [p[3] for p in pending],
                                                 [p[4] for p in pending])
            self.seconds["network"] += time.perf_counter() - started
            started = time.perf_counter()
            for (name, index, rgb, _, _), found in zip(pending, people):
                record = {"file": name, **({"frame": index} if video else {}), "people": [p.to_json() for p in found]}
                self.records.append(record)
                self.people += len(found)
                if sink is not None:
                    sink(name, index, self.drawn(rgb, found) if self.draw else rgb)
            self.seconds["draw_write"] += time.perf_counter() - started
            bar.update(len(pending))
            pending.clear()

        read_started = time.perf_counter()
        for name, index, rgb in frames:
            self.seconds["read"] += time.perf_counter() - read_started
            if rgb is None:
                self.skipped.append({"file": name, **({"frame": index} if video else {}),
                                     "reason": "cannot be decoded as an image"})
                bar.update(1)
            else:
                boxes, scores = self.boxes(name, rgb)
                pending.append((name, index, rgb, boxes, scores))
                people_pending += len(boxes)
                self.frames += 1
                if people_pending >= self.predictor.batch_size:
                    flush()
                    people_pending = 0
            read_started = time.perf_counter()
        flush()

    def images(self, paths: list[Path]) -> None:
        """Still images, under one progress bar."""
        if not paths:
            return
        bar = self.bar(len(paths), "images", "image")

        def sink(name, _, drawn):
            target = self.out_dir / f"{Path(name).stem}.jpg"
            if not cv2.imwrite(str(target), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)):
                raise OSError(f"{target}: cannot be written")

        try:
            self.run_frames(((path.name, 0, read_image(path)) for path in paths), bar, sink if self.draw else None)
        finally:
            bar.close()

    def video(self, path: Path) -> None:
        """A video, frame by frame, written back at its frame rate and size."""
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            self.skipped.append({"file": path.name, "reason": "cannot be opened as a video"})
            return
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        target = self.out_dir / f"{path.stem}.mp4"
        writer = None

        def frames():
            index = 0
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                yield path.name, index, (None if bgr is None or bgr.size == 0 else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                index += 1

        def sink(_, __, drawn):
            nonlocal writer
            if writer is None:
                height, width = drawn.shape[:2]
                writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
                if not writer.isOpened():
                    raise OSError(f"{target}: OpenCV cannot write an mp4v video here")
            writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))

        bar = self.bar(total, path.name, "frame")
        try:
            self.run_frames(frames(), bar, sink if self.draw else None, video=True)
        finally:
            bar.close()
            capture.release()
            if writer is not None:
                writer.release()

    def summary(self, wall: float) -> dict:
        return {"model": self.predictor.description, "images_or_frames": self.frames, "people": self.people,
                "skipped": len(self.skipped), "seconds": round(wall, 2),
                "frames_per_second": round(self.frames / wall, 2) if wall > 0 else None,
                "seconds_by_stage": {k: round(v, 2) for k, v in self.seconds.items()}}


def check_out_dir(out_dir: Path) -> None:
    """`--out` is new, empty, or an earlier kpt_tf.predict output (it holds predictions.json): anything else is
    someone else's directory and is refused, naming what is there."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir}: is a file; give a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / PREDICTIONS).is_file():
        held = ", ".join(sorted(p.name for p in out_dir.iterdir())[:5])
        raise ValueError(f"--out {out_dir}: not empty and not an earlier kpt_tf.predict output (holds {held}); "
                         "give a new directory")


def predict_files(predictor: Predictor, inputs: list[Path], out_dir, boxes_file=None, detector=None,
                  box_score_threshold: float = 0.0, iou_threshold: float = 0.3, draw: bool = True,
                  progress: bool = True) -> dict:
    """Run on every input file; write the drawn files and `predictions.json` (last, atomically). -> the json."""
    from kpt_tf import ownership

    out_dir = Path(out_dir)
    with ownership.owned(out_dir, "kpt_tf.predict"):
        return _predict_files(predictor, inputs, out_dir, boxes_file, detector, box_score_threshold, iou_threshold,
                              draw, progress)


def _predict_files(predictor, inputs, out_dir: Path, boxes_file, detector, box_score_threshold, iou_threshold, draw,
                   progress) -> dict:
    check_out_dir(out_dir)
    if boxes_file is not None:
        boxes_file.check_covers([p.name for p in inputs])
    out_dir.mkdir(parents=True, exist_ok=True)
    run = Run(predictor, out_dir, boxes_file, detector, box_score_threshold, iou_threshold, draw, progress=progress)
    started = time.perf_counter()
    run.images([p for p in inputs if not is_video(p)])
    for path in inputs:
        if is_video(path):
            run.video(path)
    summary = run.summary(time.perf_counter() - started)
    result = {"summary": summary, "joint_names": list(predictor.joints.names), "images": run.records,
              "skipped": run.skipped}
    staging = out_dir / f".tmp-{PREDICTIONS}"
    staging.write_text(json.dumps(result, indent=1))
    os.replace(staging, out_dir / PREDICTIONS)
    return result


def define_flags():
    from absl import flags

    flags.DEFINE_string("model", None, "An export (SavedModel), a training workdir, a .keras or a .tflite file.")
    flags.DEFINE_string("input", None, "An image, a folder of images, a glob ('photos/*.jpg') or a video file.")
    flags.DEFINE_string("out", None, "Output directory: drawn images/videos and predictions.json.")
    flags.DEFINE_string("boxes", None, "COCO detection-results JSON of person boxes (overrides --detector).")
    flags.DEFINE_string("coco_images", None, "COCO JSON whose `images` map --boxes' image_id to file names "
                        "(default: the numeric file stem).")
    flags.DEFINE_enum("detector", "hog", ["hog", "none"], "Person boxes when no --boxes: OpenCV's HOG people "
                      "detector, or none (the whole image is one person).")
    flags.DEFINE_float("box_score_threshold", 0.0, "Drop boxes scoring below this.")
    flags.DEFINE_float("iou_threshold", 0.3, "Suppress a box overlapping a better one by more than this IoU.")
    flags.DEFINE_enum("which", "best", ["best", "final"], "A workdir's best-validation or last-epoch model.")
    flags.DEFINE_bool("flip_test", True, "Average with the mirrored crop (a SavedModel keeps its export's choice).")
    flags.DEFINE_integer("batch_size", DEFAULT_BATCH, "People per network call.", lower_bound=1)
    flags.DEFINE_bool("draw", True, "Write the drawn images / video (off: predictions.json only).")


def main(argv):
    from absl import app, flags

    del argv
    f = flags.FLAGS
    if not f.model or not f.input or not f.out:
        raise app.UsageError("--model, --input and --out are required")
    from kpt_tf.detect import BoxesFile, make_detector

    inputs = resolve_inputs(f.input)
    boxes_file = BoxesFile(f.boxes, f.coco_images) if f.boxes else None
    detector = None if boxes_file is not None else make_detector(f.detector)
    predictor = Predictor.load(f.model, f.which, f.flip_test, f.batch_size)
    result = predict_files(predictor, inputs, f.out, boxes_file, detector, f.box_score_threshold, f.iou_threshold,
                           f.draw)
    s = result["summary"]
    by_stage = ", ".join(f"{k} {v:.1f} s" for k, v in s["seconds_by_stage"].items())
    print(f"{s['images_or_frames']} images/frames, {s['people']} people, {s['skipped']} skipped, {s['seconds']:.1f} s "
          f"({s['frames_per_second']} frames/s; {by_stage}); written to {f.out}/{PREDICTIONS}")
    for skip in result["skipped"][:10]:
        print(f"skipped {skip['file']}" + (f" frame {skip['frame']}" if "frame" in skip else "") +
              f": {skip['reason']}", file=sys.stderr)


if __name__ == "__main__":
    define_flags()
    from kpt_tf import cli

    cli.run(main, "kpt_tf.predict")

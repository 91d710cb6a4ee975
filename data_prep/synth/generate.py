"""The generated data set on disk: images/, annotations.json and gt_val.mat in MPII's own formats, and the same
people in COCO's (person_keypoints_{train,val}.json, data_prep.synth.coco_people).

`generate` plans the images (people per image, train then val), renders them in worker processes
(data_prep.workers; each image has its own generator seeded by (seed, image index), so the bytes do not depend
on the number of workers) and writes the files through kpt_tf.mpii: the json in the real
mpii_annotations.json schema (plus `headbox`) and the validation ground truth in the layout of
detections_our_format.mat. Helpers shared with data_prep.synth.from_annotations live here too.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from data_prep import workers
from data_prep.synth.coco_people import coco_person, write_coco_files
from data_prep.synth.scene import PEOPLE_PER_IMAGE, PEOPLE_PER_IMAGE_WEIGHTS, render_synthetic_image
from kpt_tf.mpii.annotations import write_json_annotations
from kpt_tf.mpii.coords import joint_self_rows, to_one_based
from kpt_tf.mpii.evaluation_files import save_ground_truth_mat

# Keys of a record of mpii_annotations.json, in the file's order; `headbox` is our addition.
MPII_RECORD_KEYS = (
    "dataset", "isValidation", "img_paths", "img_width", "img_height", "objpos", "joint_self",
    "scale_provided", "joint_others", "scale_provided_other", "objpos_other", "annolist_index",
    "people_index", "numOtherPeople")
RECORD_KEYS = MPII_RECORD_KEYS + ("headbox",)
# How the real file stores "no other people" (a MATLAB empty matrix exported by a json toolbox).
_MATLAB_EMPTY = {"_ArrayType_": "double", "_ArraySize_": [0, 0], "_ArrayData_": None}
DATASET_NAME = "synth_mpii"
JPEG_QUALITY = 90


def _others_fields(people_rows: list[dict], index: int):
    """joint_others, scale_provided_other, objpos_other as the real file stores them."""
    others = [p for k, p in enumerate(people_rows) if k != index]
    if not others:
        return dict(_MATLAB_EMPTY), dict(_MATLAB_EMPTY), dict(_MATLAB_EMPTY)
    if len(others) == 1:
        o = others[0]
        return o["joint_self"], o["scale_provided"], o["objpos"]
    return ([o["joint_self"] for o in others], [o["scale_provided"] for o in others],
            [o["objpos"] for o in others])


def write_jpeg(path: Path, image):
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())


def write_ground_truth(path: Path, records: list[dict]):
    """gt_val.mat of the validation records (their joint_self and headbox, as annotations.json holds them)."""
    save_ground_truth_mat(path, [r["joint_self"] for r in records], [r["headbox"] for r in records])


def _synthetic_task(task):
    index, num_people, seed, images_dir = task
    rng = np.random.default_rng([seed, index])
    image, people = render_synthetic_image(rng, num_people)
    name = f"synth_{index:06d}.jpg"
    write_jpeg(Path(images_dir) / name, image)
    rows = [dict(joint_self=joint_self_rows(p["joints"], p["annotated"], p["visible"]),
                 objpos=[float(v) for v in to_one_based(p["objpos"])],
                 scale_provided=float(p["scale"]),
                 headbox=np.round(to_one_based(p["headbox"]), 3).tolist()) for p in people]
    for row, person in zip(rows, people):
        row["coco"] = coco_person(row["joint_self"], person)
    return name, image.shape[1], image.shape[0], rows


def run_tasks(fn, tasks, num_workers):
    """`fn` over tasks -> results in task order, in worker processes when more than one is asked for."""
    with workers.ordered_map(fn, tasks, num_workers) as results:
        return list(results)


def check_count(name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def prepare_output(output_dir) -> Path:
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir {out} exists and is not a directory")
    (out / "images").mkdir(parents=True, exist_ok=True)
    return out


def generate(output_dir, num_train: int, num_val: int, seed: int = 0, num_workers: int | None = None) -> dict:
    """Write a synthetic MPII-format data set; returns a summary (people, images, seconds, paths)."""
    check_count("num_train", num_train)
    check_count("num_val", num_val)
    check_count("seed", seed)
    if num_workers is not None:
        check_count("num_workers", num_workers, 1)
    if num_train + num_val == 0:
        raise ValueError("num_train + num_val must be at least 1")
    start = time.perf_counter()
    out = prepare_output(output_dir)
    plan_rng = np.random.default_rng(seed)
    plan = []                         # (people in the image, is validation)
    for is_val, total in ((0.0, num_train), (1.0, num_val)):
        left = total
        while left > 0:
            k = min(left, int(plan_rng.choice(PEOPLE_PER_IMAGE, p=PEOPLE_PER_IMAGE_WEIGHTS)))
            plan.append((k, is_val))
            left -= k
    tasks = [(i, k, int(seed), str(out / "images")) for i, (k, _) in enumerate(plan)]
    results = run_tasks(_synthetic_task, tasks, num_workers)
    records = []
    for image_index, ((name, width, height, rows), (_, is_val)) in enumerate(zip(results, plan)):
        for p, row in enumerate(rows):
            others = _others_fields(rows, p)
            records.append({
                "dataset": DATASET_NAME, "isValidation": is_val, "img_paths": name, "img_width": float(width),
                "img_height": float(height), "objpos": row["objpos"], "joint_self": row["joint_self"],
                "scale_provided": row["scale_provided"], "joint_others": others[0],
                "scale_provided_other": others[1], "objpos_other": others[2],
                "annolist_index": float(image_index + 1), "people_index": float(p + 1),
                "numOtherPeople": float(len(rows) - 1), "headbox": row["headbox"]})
    write_json_annotations(out / "annotations.json", records)
    write_ground_truth(out / "gt_val.mat", [r for r in records if r["isValidation"] == 1.0])
    write_coco_files(out, [(name, width, height, [row["coco"] for row in rows])
                           for name, width, height, rows in results], [is_val == 1.0 for _, is_val in plan])
    seconds = time.perf_counter() - start
    return dict(people=len(records), train=num_train, val=num_val, images=len(plan), seconds=seconds,
                people_per_second=len(records) / max(seconds, 1e-9), output_dir=str(out))

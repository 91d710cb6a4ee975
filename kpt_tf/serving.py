"""Client side of an exported SavedModel: run people of an annotated image through it and draw them.

Used by the demo (`skeleton.png`) and the export tests; the graph itself is built in kpt_tf.export.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from kpt_tf.joints import JointSubset
from kpt_tf.transfer import EXPORT_METADATA
from kpt_tf.visualize import draw_skeleton


def load_savedmodel(path):
    """(loaded SavedModel, its joint subset, its export metadata) for a directory written by kpt_tf.export."""
    path = Path(path)
    meta_path = path / EXPORT_METADATA
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path}: not a kpt_tf export (no {EXPORT_METADATA})")
    meta = json.loads(meta_path.read_text())
    return tf.saved_model.load(str(path)), JointSubset.parse(meta["joints"]), meta


def serve_annotated_image(savedmodel_dir, dataset_dir, out_png, split: str = "val") -> Path:
    """Serve every person of the first `split` image of an MPII-format data set (annotations.json +
    images/) through `serve_center_scale` with their rough objpos/scale, and draw the predicted skeletons
    on the full image."""
    from data_prep.annotation_sources import read_json_annotations

    dataset_dir = Path(dataset_dir)
    people = [p for p in read_json_annotations(dataset_dir / "annotations.json")
              if p.split == split and p.objpos is not None]
    if not people:
        raise ValueError(f"{dataset_dir}: no {split} person with a centre to serve")
    image_name = people[0].image
    group = [p for p in people if p.image == image_name]
    bgr = cv2.imread(str(dataset_dir / "images" / image_name), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{dataset_dir / 'images' / image_name}: cannot be read")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    model, subset, _ = load_savedmodel(savedmodel_dir)
    images = tf.constant(np.repeat(rgb[None], len(group), axis=0))
    centers = tf.constant(np.stack([p.objpos for p in group]).astype(np.float32))
    scales = tf.constant(np.array([p.scale for p in group], np.float32))
    out = model.signatures["serve_center_scale"](images=images, centers=centers, scales=scales)
    drawn = rgb
    for keypoints in out["keypoints"].numpy():
        drawn = draw_skeleton(drawn, keypoints, subset)
    out_png = Path(out_png)
    cv2.imwrite(str(out_png), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    return out_png

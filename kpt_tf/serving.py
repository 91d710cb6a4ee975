"""Client side of an exported SavedModel: send the people of one image through it and draw their skeletons.

Used by the demo (`skeleton.png`) and the export tests; the graph itself is built in kpt_tf.export. People are
given as MPII's rough centres and scales (the `serve_center_scale` signature); where they come from (an
annotation file, a detector) is the caller's business.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from kpt_tf import workdir
from kpt_tf.visualize import draw_skeleton


def load_savedmodel(path):
    """(loaded SavedModel, its joint subset (in the keypoint layout the export records), its ExportMetadata) for a
    directory written by kpt_tf.export."""
    metadata = workdir.ExportMetadata.read(path)
    return tf.saved_model.load(str(path)), metadata.joint_subset(), metadata


def serve_people(savedmodel_dir, rgb_image: np.ndarray, centers, scales) -> dict:
    """Keypoints [N, J, 2] (image pixels), scores [N, J] and the joint subset of N people of one RGB image,
    given by their rough centres [N, 2] (0-based pixels) and scales [N] (person height / 200 px)."""
    centers = np.asarray(centers, np.float32).reshape(-1, 2)
    scales = np.asarray(scales, np.float32).reshape(-1)
    if len(centers) != len(scales) or not len(centers):
        raise ValueError(f"serve_people: {len(centers)} centres and {len(scales)} scales; need one of each per "
                         "person, at least one person")
    model, subset, _ = load_savedmodel(savedmodel_dir)
    images = tf.constant(np.repeat(np.asarray(rgb_image, np.uint8)[None], len(centers), axis=0))
    out = model.signatures["serve_center_scale"](images=images, centers=tf.constant(centers),
                                                  scales=tf.constant(scales))
    return {"keypoints": out["keypoints"].numpy(), "scores": out["scores"].numpy(), "subset": subset}


def draw_served_people(savedmodel_dir, image_path, centers, scales, out_png) -> Path:
    """Serve the people of an image file through the SavedModel and write the image with their skeletons."""
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{image_path}: cannot be read as an image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    served = serve_people(savedmodel_dir, rgb, centers, scales)
    drawn = rgb
    for keypoints in served["keypoints"]:
        drawn = draw_skeleton(drawn, keypoints, served["subset"])
    out_png = Path(out_png)
    cv2.imwrite(str(out_png), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    return out_png

r"""Export a trained workdir as a SavedModel for serving: `python -m kpt_tf.export --workdir W --out DIR`.

Signatures (Keras `ExportArchive`, the machinery behind `model.export`, so several endpoints fit):
- `serving_default(images uint8 [N,H,W,3], boxes float32 [N,4])`: a person box (x1, y1, x2, y2, image
  pixels) per image; the person crop (square, 1.25 x the box's longer side, like HRNet/mmpose's box
  padding) is cut and normalised inside the graph. Returns `keypoints` [N,J,2] in the input image's pixel
  coordinates, `scores` [N,J] (heatmap maxima) and `joint_names` [J].
- `serve_center_scale(images, centers [N,2], scales [N])`: MPII's rough `objpos`/`scale` (0-based
  pixels), adjusted inside by the convention every reference code base uses (c_y += 15 s, s *= 1.25).
- `heatmaps(crops float32 [N,S,S,3], 0..255)`: the raw last-stack heatmaps of the network.
Flip test (averaging the mirrored pass) is on when the joint subset allows it.
The exported variables keep their layer-path names (`stem_conv/kernel:0`); kpt_tf.transfer reads them.
Check with TF's own tool: `saved_model_cli show --dir DIR --all`, `saved_model_cli run ...` (README).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import tensorflow as tf
from absl import app, flags

from kpt_tf.codec import HeatmapCodec
from kpt_tf.geometry import CENTER_SHIFT_PER_SCALE, PERSON_BOX_PIXELS, SCALE_ENLARGEMENT
from kpt_tf.joints import JointSubset
from kpt_tf.transfer import EXPORT_METADATA

BOX_PADDING = 1.25


def _crop_transforms(centers, sides, size: int):
    """Projective-transform rows mapping crop pixels to image pixels, and the 2x3 crop->image affine."""
    k = sides / float(size)                       # image pixels per crop pixel
    half = (size - 1) / 2.0
    tx = centers[:, 0] - half * k
    ty = centers[:, 1] - half * k
    zeros = tf.zeros_like(k)
    rows = tf.stack([k, zeros, tx, zeros, k, ty, zeros, zeros], axis=1)
    affine = tf.reshape(tf.stack([k, zeros, tx, zeros, k, ty], axis=1), [-1, 2, 3])
    return rows, affine


class PoseServer(tf.Module):
    """The serving graph around a trained network: crop -> network -> decode -> image coordinates."""

    def __init__(self, net: keras.Model, codec: HeatmapCodec, subset: JointSubset, flip_test: bool):
        super().__init__(name="pose_server")
        self.net = net
        self.codec = codec
        self.size = int(net.inputs[0].shape[1])
        self.joint_names = tf.constant(list(subset.names))
        self.flip_permutation = subset.flip_permutation() if flip_test else None

    def raw_heatmaps(self, crops):
        crops = tf.cast(crops, tf.float32)
        heatmaps = tf.cast(self.net(crops, training=False)[-1], tf.float32)
        if self.flip_permutation is not None:
            mirrored = tf.cast(self.net(tf.reverse(crops, axis=[2]), training=False)[-1], tf.float32)
            heatmaps = 0.5 * (heatmaps + HeatmapCodec.flip_back(mirrored, self.flip_permutation))
        return heatmaps

    def _check(self, images, count, what):
        tf.debugging.assert_equal(tf.shape(images)[0], count,
                                  message=f"images and {what} must have the same first dimension (one per image)")

    def from_centers(self, images, centers, sides):
        rows, affine = _crop_transforms(centers, sides, self.size)
        crops = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(images, tf.float32), transforms=rows, output_shape=[self.size, self.size],
            fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
        joints, scores = self.codec.decode(self.raw_heatmaps(crops))
        keypoints = tf.einsum("nij,nkj->nki", affine[:, :, :2], joints) + affine[:, None, :, 2]
        return {"keypoints": keypoints, "scores": scores, "joint_names": self.joint_names}

    def serve_boxes(self, images, boxes):
        self._check(images, tf.shape(boxes)[0], "boxes")
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        tf.debugging.assert_positive(tf.minimum(w, h), message="boxes must be x1, y1, x2, y2 with x2 > x1, y2 > y1")
        centers = tf.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
        return self.from_centers(images, centers, BOX_PADDING * tf.maximum(w, h))

    def serve_center_scale(self, images, centers, scales):
        self._check(images, tf.shape(centers)[0], "centers")
        tf.debugging.assert_positive(scales, message="scales must be > 0 (person height / 200 px)")
        # geometry.adjust_person_box, in the graph
        adjusted = centers + tf.stack([tf.zeros_like(scales), CENTER_SHIFT_PER_SCALE * scales], axis=1)
        return self.from_centers(images, adjusted, PERSON_BOX_PIXELS * SCALE_ENLARGEMENT * scales)


def export_net(net: keras.Model, codec: HeatmapCodec, subset: JointSubset, out_dir, flip_test: bool = True):
    """Write the SavedModel with the three signatures to `out_dir`."""
    flip_test = flip_test and subset.is_flip_closed
    server = PoseServer(net, codec, subset, flip_test)
    size = server.size
    archive = keras.export.ExportArchive()
    archive.track(net)
    image_spec = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")
    archive.add_endpoint("serving_default", server.serve_boxes,
                         [image_spec, tf.TensorSpec([None, 4], tf.float32, name="boxes")])
    archive.add_endpoint("serve_center_scale", server.serve_center_scale,
                         [image_spec, tf.TensorSpec([None, 2], tf.float32, name="centers"),
                          tf.TensorSpec([None], tf.float32, name="scales")])
    archive.add_endpoint("heatmaps", server.raw_heatmaps,
                         [tf.TensorSpec([None, size, size, 3], tf.float32, name="crops")])
    archive.write_out(str(out_dir), verbose=False)
    # Metadata beside the graph (TF Serving's assets.extra convention): kpt_tf.transfer reads the joints.
    meta = Path(out_dir) / EXPORT_METADATA
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"joints": list(subset.names), "input_size": size, "flip_test": flip_test,
                                "heatmap_size": codec.heatmap_size, "sigma": codec.sigma}, indent=1))
    return Path(out_dir)


def export_workdir(workdir, out_dir, which: str = "best", flip_test: bool = True) -> Path:
    from kpt_tf.training.loop import codec_from_config, load_config

    config = load_config(workdir)
    path = Path(workdir) / f"{which}.keras"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained model ({which}.keras) in the workdir; train first")
    net = keras.saving.load_model(path, compile=False)
    subset = JointSubset.parse(config.joints)
    return export_net(net, codec_from_config(config), subset, out_dir, flip_test)


def define_flags():
    """CLI flags (defined only when run as a program, so importing this module defines none)."""
    flags.DEFINE_string("workdir", None, "Training workdir (holds config.json and best.keras).")
    flags.DEFINE_string("out", None, "Output SavedModel directory.")
    flags.DEFINE_enum("which", "best", ["best", "final"], "Best-validation or last-epoch model.")
    flags.DEFINE_bool("flip_test", True, "Average with the mirrored image inside the served graph.")


def main(argv):
    del argv
    f = flags.FLAGS
    if not f.workdir or not f.out:
        raise app.UsageError("--workdir and --out are required")
    try:
        out = export_workdir(f.workdir, f.out, f.which, f.flip_test)
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(str(e))
    print(f"SavedModel written to {out}; inspect with: saved_model_cli show --dir {out} --all")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    define_flags()
    app.run(main)

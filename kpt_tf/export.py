r"""Export a trained workdir as a SavedModel for serving: `python -m kpt_tf.export --workdir W --out DIR`.

Signatures (Keras `ExportArchive`, the machinery behind `model.export`, so several endpoints fit):
- `serving_default(images uint8 [N,H,W,3], boxes float32 [N,4])`: a person box (x1, y1, x2, y2, image
  pixels) per image; the person crop (square, 1.25 x the box's longer side, like HRNet/mmpose's box
  padding) is cut and normalised inside the graph. Returns `keypoints` [N,J,2] in the input image's pixel
  coordinates, `scores` [N,J] (heatmap maxima) and `joint_names` [J].
- `serve_center_scale(images, centers [N,2], scales [N])`: MPII's rough `objpos`/`scale` (0-based
  pixels), adjusted inside by the convention every reference code base uses (c_y += 15 s, s *= 1.25).
- `heatmaps(crops float32 [N,S,S,3], 0..255)`: the network's final heatmaps (kpt_tf.inference's function).
Flip test (averaging the mirrored pass) is on when the joint subset allows it.
The exported variables keep their layer-path names (`stem_conv/kernel:0`); kpt_tf.transfer reads them.
Check with TF's own tool: `saved_model_cli show --dir DIR --all`, `saved_model_cli run ...` (README).
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import tensorflow as tf
from absl import app, flags

from kpt_tf import geometry, inference, workdir
from kpt_tf.codec import HeatmapCodec
from kpt_tf.joints import JointSubset

# Person box -> crop: a square of 1.25 x the box's longer side (HRNet/mmpose's box padding).
BOX_PADDING = 1.25


class PoseServer(tf.Module):
    """The serving graph around a trained network: crop -> network (+ flip test) -> decode -> image pixels."""

    def __init__(self, net: keras.Model, codec: HeatmapCodec, subset: JointSubset, flip_test: bool):
        super().__init__(name="pose_server")
        self.net = net
        self.codec = codec
        self.size = int(net.inputs[0].shape[1])
        self.joint_names = tf.constant(list(subset.names))
        self.flip_permutation = inference.flip_permutation_or_none(subset, flip_test)

    def raw_heatmaps(self, crops):
        return inference.final_heatmaps(self.net, tf.cast(crops, tf.float32), self.flip_permutation)

    def _check(self, images, count, what):
        """Refuse, naming the input and the problem, what would otherwise give plausible or NaN keypoints."""
        tf.debugging.assert_rank(images, 4, message="images must be uint8 [N, H, W, 3]")
        shape = tf.shape(images)
        tf.debugging.assert_equal(shape[0], count,
                                  message=f"images and {what} must have the same first dimension (one per image)")
        tf.debugging.assert_positive(tf.minimum(shape[1], shape[2]),
                                     message="images must not be empty: height and width must be > 0")
        brightest = tf.reduce_max(tf.cast(images, tf.int32), axis=[1, 2, 3])
        tf.debugging.assert_greater(tf.reduce_min(tf.concat([brightest, [255]], 0)), 1, message=(
            "an image holds only pixel values 0 and 1: a float image in [0, 1] cast to uint8 (saved_model_cli "
            "casts .npy inputs to the signature's dtype)? send uint8 pixels 0..255"))
        return tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)

    def from_centers(self, images, centers, box_scales):
        """People given as person-box centres [N, 2] and scales [N] (box side = 200 * scale image px)."""
        crop_to_image = geometry.invert_affine(geometry.crop_affine(centers, box_scales, self.size, backend="tf"),
                                               backend="tf")
        crops = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(images, tf.float32), transforms=geometry.to_projective_rows(crop_to_image, backend="tf"),
            output_shape=[self.size, self.size], fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
        joints, scores = self.codec.decode(self.raw_heatmaps(crops))
        keypoints = geometry.apply_affine_batch(crop_to_image, joints, backend="tf")
        return {"keypoints": keypoints, "scores": scores, "joint_names": self.joint_names}

    def serve_boxes(self, images, boxes):
        height, width = self._check(images, tf.shape(boxes)[0], "boxes")
        tf.debugging.assert_all_finite(boxes, message="boxes must be finite (no NaN or inf)")
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        tf.debugging.assert_positive(tf.minimum(w, h), message="boxes must be x1, y1, x2, y2 with x2 > x1, y2 > y1")
        overlaps = ((boxes[:, 2] > 0) & (boxes[:, 3] > 0) & (boxes[:, 0] < width) & (boxes[:, 1] < height))
        tf.debugging.Assert(tf.reduce_all(overlaps), ["a box lies entirely outside its image"])
        centers = tf.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
        return self.from_centers(images, centers, BOX_PADDING * tf.maximum(w, h) / geometry.PERSON_BOX_PIXELS)

    def serve_center_scale(self, images, centers, scales):
        self._check(images, tf.shape(centers)[0], "centers")
        tf.debugging.assert_equal(tf.shape(centers)[0], tf.shape(scales)[0],
                                  message="centers and scales must have the same first dimension (one per person)")
        tf.debugging.assert_all_finite(centers, message="centers must be finite (no NaN or inf)")
        tf.debugging.assert_all_finite(scales, message="scales must be finite (no NaN or inf)")
        tf.debugging.assert_positive(scales, message="scales must be > 0 (person height / 200 px)")
        return self.from_centers(images, *geometry.adjust_person_box(centers, scales, backend="tf"))


def export_net(net: keras.Model, codec: HeatmapCodec, subset: JointSubset, out_dir, flip_test: bool = True,
               architecture: str = "hourglass") -> Path:
    """Write the SavedModel with the three signatures and its metadata to `out_dir`."""
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
    workdir.ExportMetadata(joints=list(subset.names), input_size=size, heatmap_size=codec.heatmap_size,
                           sigma=codec.sigma, flip_test=server.flip_permutation is not None,
                           architecture=architecture).write(out_dir)
    return Path(out_dir)


def export_workdir(workdir_path, out_dir, which: str = "best", flip_test: bool = True) -> Path:
    from kpt_tf.models import architecture_name

    trained = workdir.load_trained(workdir_path, which)
    if trained.net is None:
        raise ValueError(f"{workdir_path}: already a SavedModel; export takes a training workdir")
    return export_net(trained.net, trained.codec(), trained.joints, out_dir, flip_test,
                      architecture_name(trained.config))


def define_flags():
    """CLI flags (defined only when run as a program, so importing this module defines none)."""
    flags.DEFINE_string("workdir", None, "Training workdir (kpt_tf.train's output).")
    flags.DEFINE_string("out", None, "Output SavedModel directory.")
    flags.DEFINE_enum("which", "best", ["best", "final"], "Best-validation or last-epoch model.")
    flags.DEFINE_bool("flip_test", True, "Average with the mirrored image inside the served graph.")


def main(argv):
    del argv
    f = flags.FLAGS
    if not f.workdir or not f.out:
        raise app.UsageError("--workdir and --out are required")
    out = export_workdir(f.workdir, f.out, f.which, f.flip_test)   # refusals: kpt_tf.cli prints them
    print(f"SavedModel written to {out}; inspect with: saved_model_cli show --dir {out} --all")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    define_flags()
    from kpt_tf import cli

    cli.run(main, "kpt_tf.export")

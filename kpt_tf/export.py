r"""Export a trained workdir as a SavedModel for serving: `python -m kpt_tf.export --workdir W --out DIR`, or as
one TFLite file for phones and edge devices: `--format tflite --out X.tflite [--quantize none|float16|dynamic|int8
--calibration_data RECORDS]` (kpt_tf.tflite: the network alone; crop, flip test and decoding stay with the caller).

Signatures (`tf.saved_model.save` of the object graph Keras' `ExportArchive` writes, each endpoint traced once):
- `serving_default(images uint8 [N,H,W,3], boxes float32 [N,4])`: a person box (x1, y1, x2, y2, image
  pixels) per image; the person crop (square, 1.25 x the box's longer side, like HRNet/mmpose's box
  padding) is cut and normalised inside the graph. Returns `keypoints` [N,J,2] in the input image's pixel
  coordinates, `scores` [N,J] (heatmap maxima) and `joint_names` [J].
- `serve_center_scale(images, centers [N,2], scales [N])`: MPII's rough `objpos`/`scale` (0-based
  pixels), adjusted inside by the convention every reference code base uses (c_y += 15 s, s *= 1.25).
- `heatmaps(crops float32 [N,S,S,3], 0..255)`: the network's final heatmaps (kpt_tf.inference's function).
Flip test (averaging the mirrored pass) is on when the joint subset allows it. The network runs as every prediction
here runs it (`kpt_tf.inference.FinalStage`): each batch norm that follows a convolution folded into it
(`kpt_tf.models.folding`), from the same variables.
`--xla` compiles the network part of every endpoint with XLA (`jit_compile`): faster at small batches on CPU
(BUILD_NOTES, Speed against PyTorch), off by default because TF Serving runs XLA on CPU only with
`--xla_cpu_compilation_enabled=true` and every new batch size compiles once (seconds) on its first call.
The exported variables keep their layer-path names (`stem_conv/kernel:0`); kpt_tf.transfer reads them.
Check with TF's own tool: `saved_model_cli show --dir DIR --all`, `saved_model_cli run ...` (README).

The SavedModel is written to a staging directory beside DIR and moved into place only when complete, so a full
disk or a kill never leaves a half-written export under DIR, and a previous export there stays intact until the
new one replaces it. A DIR that holds anything but a kpt_tf export is refused (an `--out ~` must not be replaced).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
from pathlib import Path

import keras
import tensorflow as tf
from absl import app, flags

from kpt_tf import geometry, inference, workdir
from kpt_tf.codec import HeatmapCodec
from kpt_tf.joints import JointSubset
from kpt_tf.models.registry import DEFAULT_ARCHITECTURE
from kpt_tf.trained import load_trained
from kpt_tf.workdir import ExportOptions


class PoseServer(tf.Module):
    """The serving graph around a trained network: crop -> network (+ flip test) -> decode -> image pixels."""

    def __init__(self, net: keras.Model, codec: HeatmapCodec, subset: JointSubset,
                 options: ExportOptions = ExportOptions()):
        super().__init__(name="pose_server")
        self.max_image_pixels = int(options.max_image_pixels)
        self.net = net
        self.xla = bool(options.xla)
        self.final_stage = inference.FinalStage(net, jit_compile=self.xla)   # one trace for every endpoint
        self.codec = codec
        self.size = int(net.inputs[0].shape[1])
        self.joint_names = tf.constant(list(subset.names))
        self.flip_permutation = inference.flip_permutation_or_none(subset, options.flip_test)

    def raw_heatmaps(self, crops):
        return inference.final_heatmaps(self.final_stage, tf.cast(crops, tf.float32), self.flip_permutation)

    def _check(self, images, count, what):
        """Refuse, naming the input and the problem, what would otherwise give plausible or NaN keypoints or hold
        unbounded memory; -> (images behind the checks, height, width)."""
        tf.debugging.assert_rank(images, 4, message="images must be uint8 [N, H, W, 3]")
        shape = tf.shape(images)
        checks = [
            tf.debugging.assert_equal(shape[0], count,
                                      message=f"images and {what} must have the same first dimension (one per "
                                              "image)"),
            tf.debugging.assert_positive(tf.minimum(shape[1], shape[2]),
                                         message="images must not be empty: height and width must be > 0"),
            tf.debugging.assert_less_equal(
                tf.cast(shape[1], tf.int64) * tf.cast(shape[2], tf.int64),
                tf.constant(self.max_image_pixels, tf.int64),
                message=f"images must hold at most {self.max_image_pixels:,} pixels (this export's limit, "
                        "kpt_tf.export --max_image_pixels); downscale the image and its boxes"),
        ]
        with tf.control_dependencies(checks):     # nothing reads the pixels before the size is known to be bounded
            images = tf.identity(images)
        # A float image in [0, 1] cast to uint8 holds 0 and 1 only (all 0 unless a value was exactly 1.0), as a black
        # frame does: one image cannot tell them apart. A request cast that way is cast as a whole, so it is refused
        # only when every image of the batch is like that; a black or dark frame among others is ordinary input.
        brightest = tf.reduce_max(images, axis=[1, 2, 3])    # on uint8: no full-size copy
        tf.debugging.assert_equal(
            tf.reduce_all(brightest <= 1), False, message=(
                "every image holds only pixel values 0 and 1: a float image in [0, 1] cast to uint8 (saved_model_cli "
                "casts .npy inputs to the signature's dtype)? send uint8 pixels 0..255 (a black frame alone has no "
                "person to find)"))
        return images, tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)

    def from_centers(self, images, centers, box_scales):
        """People given as person-box centres [N, 2] and scales [N] (box side = 200 * scale image px)."""
        crop_to_image = geometry.invert_affine(geometry.crop_affine(centers, box_scales, self.size, backend="tf"),
                                               backend="tf")
        # float16 (2 bytes per pixel, integers 0..255 exact; the interpolated crop is within 1/16 of float32's,
        # unbiased) keeps the one full-size copy of a large image at half float32's size; uint8 would truncate.
        crops = tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(images, tf.float16), transforms=geometry.to_projective_rows(crop_to_image, backend="tf"),
            output_shape=[self.size, self.size], fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
        crops = tf.cast(crops, tf.float32)
        joints, scores = self.codec.decode(self.raw_heatmaps(crops))
        keypoints = geometry.apply_affine_batch(crop_to_image, joints, backend="tf")
        return {"keypoints": keypoints, "scores": scores, "joint_names": self.joint_names}

    def serve_boxes(self, images, boxes):
        images, height, width = self._check(images, tf.shape(boxes)[0], "boxes")
        tf.debugging.assert_all_finite(boxes, message="boxes must be finite (no NaN or inf)")
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        tf.debugging.assert_positive(tf.minimum(w, h), message="boxes must be x1, y1, x2, y2 with x2 > x1, y2 > y1")
        overlaps = ((boxes[:, 2] > 0) & (boxes[:, 3] > 0) & (boxes[:, 0] < width) & (boxes[:, 1] < height))
        tf.debugging.Assert(tf.reduce_all(overlaps), ["a box lies entirely outside its image"])
        # A finite but absurd box (1e30) overflows the crop transform into NaN keypoints: a person box is at most
        # geometry.MAX_BOX_TO_IMAGE times the image's longer side.
        tf.debugging.assert_less_equal(
            tf.maximum(w, h), geometry.MAX_BOX_TO_IMAGE * tf.maximum(width, height),
            message=f"a box is more than {geometry.MAX_BOX_TO_IMAGE:g} times as large as its image: boxes are x1, y1, "
                    "x2, y2 in the image's pixels")
        return self.from_centers(images, *geometry.box_center_scale(boxes, backend="tf"))

    def serve_center_scale(self, images, centers, scales):
        images, height, width = self._check(images, tf.shape(centers)[0], "centers")
        tf.debugging.assert_equal(tf.shape(centers)[0], tf.shape(scales)[0],
                                  message="centers and scales must have the same first dimension (one per person)")
        tf.debugging.assert_all_finite(centers, message="centers must be finite (no NaN or inf)")
        tf.debugging.assert_all_finite(scales, message="scales must be finite (no NaN or inf)")
        tf.debugging.assert_positive(scales, message="scales must be > 0 (person height / 200 px)")
        tf.debugging.assert_less_equal(
            scales * geometry.PERSON_BOX_PIXELS, geometry.MAX_BOX_TO_IMAGE * tf.maximum(width, height),
            message=f"a scale makes the person box more than {geometry.MAX_BOX_TO_IMAGE:g} times as large as its "
                    "image: scales are person height / 200 px")
        return self.from_centers(images, *geometry.adjust_person_box(centers, scales, backend="tf"))


STAGING_PREFIX = ".tmp-export-"
REPLACED_PREFIX = ".replaced-export-"


def check_export_target(out_dir: Path) -> None:
    """Refuse an `--out` that is a file, or a non-empty directory that is not a kpt_tf export."""
    if out_dir.is_file():
        raise ValueError(f"--out {out_dir}: is a file; give a directory for the SavedModel")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / workdir.EXPORT_METADATA).is_file():
        held = ", ".join(sorted(p.name for p in out_dir.iterdir())[:5])
        raise ValueError(f"--out {out_dir}: not empty and not a kpt_tf export (holds {held}); give a new "
                         "directory or a previous export to replace")


def _publish_directory(staging: Path, out_dir: Path) -> None:
    """Move the complete `staging` directory to `out_dir`, replacing a previous export there."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    replaced = out_dir.with_name(REPLACED_PREFIX + out_dir.name)
    shutil.rmtree(replaced, ignore_errors=True)
    os.replace(out_dir, replaced)
    os.replace(staging, out_dir)     # a kill between the two replaces leaves the previous export in `replaced`
    shutil.rmtree(replaced, ignore_errors=True)


def export_net(net: keras.Model, codec: HeatmapCodec, subset: JointSubset, out_dir,
               options: ExportOptions = ExportOptions(), architecture: str = DEFAULT_ARCHITECTURE) -> Path:
    """Write the SavedModel with the three signatures and its metadata to `out_dir` (staged, then moved)."""
    from kpt_tf import ownership

    if options.format != "savedmodel":
        raise ValueError(f"export_net writes a SavedModel, not {options.format!r} (TFLite: kpt_tf.tflite.convert)")
    out_dir = Path(out_dir)
    with ownership.owned(out_dir, "kpt_tf.export"):
        return _export_net(net, codec, subset, out_dir, options, architecture)


def _export_net(net, codec, subset, out_dir: Path, options: ExportOptions, architecture: str) -> Path:
    check_export_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = out_dir.with_name(STAGING_PREFIX + out_dir.name)
    shutil.rmtree(staging, ignore_errors=True)     # left by a killed export
    try:
        _write_savedmodel(net, codec, subset, staging, options, architecture)
    except (OSError, tf.errors.OpError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        code = getattr(e, "errno", None) or _errno_in_message(getattr(e, "message", str(e)))
        reason = os.strerror(code) if code else (getattr(e, "message", None) or str(e)).strip().splitlines()[0]
        kept = ("the previous export there is intact" if (out_dir / workdir.EXPORT_METADATA).is_file()
                else "nothing was left behind")
        raise OSError(code, f"{out_dir}: cannot write the SavedModel ({reason}); {kept}") from None
    _publish_directory(staging, out_dir)
    return out_dir


def _errno_in_message(message: str) -> int | None:
    """TF's file errors (a full disk, a size limit) carry the OS reason only in their text."""
    for code in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EACCES, errno.EROFS):
        if os.strerror(code) in message:
            return code
    return None


def _write_savedmodel(net, codec, subset, out_dir: Path, options: ExportOptions, architecture: str) -> None:
    server = PoseServer(net, codec, subset, options)
    size = server.size
    image_spec = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")
    signatures = {
        "serving_default": (server.serve_boxes, [image_spec, tf.TensorSpec([None, 4], tf.float32, name="boxes")]),
        "serve_center_scale": (server.serve_center_scale,
                               [image_spec, tf.TensorSpec([None, 2], tf.float32, name="centers"),
                                tf.TensorSpec([None], tf.float32, name="scales")]),
        "heatmaps": (server.raw_heatmaps, [tf.TensorSpec([None, size, size, 3], tf.float32, name="crops")]),
    }
    # The object graph Keras' ExportArchive writes (the network's variables under `variables`, each endpoint an
    # attribute and a signature), saved by `tf.saved_model.save` directly: ExportArchive traces every endpoint once
    # to list the variables it captures and TF's saver traces it again inside its save context, so an export paid
    # two traces of each endpoint (measured: 4.7 -> 2.7 s for a depth-1 tiny network; BUILD_NOTES, Export).
    root = tf.__internal__.tracking.AutoTrackable()
    # The tf.Variables the graphs capture, tracked as themselves: TF1-style loaders (saved_model_cli run, TF
    # Serving) restore the variables a signature reads from these objects, not from Keras' wrappers of them.
    root._all_variables = [v.value for v in net.variables]
    root.variables = list(net.variables)
    root.trainable_variables = list(net.trainable_variables)
    root.non_trainable_variables = list(net.non_trainable_variables)
    for name, (fn, spec) in signatures.items():
        setattr(root, name, tf.function(fn, input_signature=spec, autograph=False))
    tf.saved_model.save(root, str(out_dir), signatures={name: getattr(root, name) for name in signatures})
    # flip_test as served: off when the joints have no mirror pairs, whatever was asked
    served = dataclasses.replace(options, flip_test=server.flip_permutation is not None,
                                 max_image_pixels=server.max_image_pixels, xla=server.xla)
    workdir.ExportMetadata.of(served, subset, input_size=size,
                              heatmap_size=codec.heatmap_size, sigma=codec.sigma,
                              architecture=architecture).write(out_dir)


def export_workdir(workdir_path, out_dir, which: str = "best", options: ExportOptions = ExportOptions()) -> Path:
    """The `which` network of a training workdir (or a `.keras` file) as a SavedModel (`export_net`)."""
    from kpt_tf.models import architecture_name

    trained = load_trained(workdir_path, which)
    if trained.net is None:
        raise ValueError(f"{workdir_path}: already a SavedModel; export takes a training workdir")
    return export_net(trained.net, trained.codec(), trained.joints, out_dir, options,
                      architecture_name(trained.config))


def export_workdir_tflite(workdir_path, out_path, which: str = "best", quantize: str = "none",
                          calibration_data: str | None = None, calibration_split: str = "val") -> Path:
    """The workdir's network as a `.tflite` file (kpt_tf.tflite.convert)."""
    from kpt_tf import tflite
    from kpt_tf.models import architecture_name

    trained = load_trained(workdir_path, which)
    if trained.net is None:
        raise ValueError(f"{workdir_path}: already a SavedModel; export takes a training workdir or a .keras file")
    crops = None
    if quantize == "int8":
        if not calibration_data:
            raise ValueError("--quantize int8 needs --calibration_data RECORDS: crops to calibrate the activations on")
        crops = tflite.calibration_crops(calibration_data, calibration_split, trained.joints,
                                         int(trained.net.inputs[0].shape[1]))
    return tflite.convert(trained.net, trained.codec(), trained.joints, out_path, quantize, crops,
                          architecture_name(trained.config) if trained.config is not None else DEFAULT_ARCHITECTURE)


def define_flags():
    """CLI flags (defined only when run as a program, so importing this module defines none)."""
    from kpt_tf.tflite import QUANTIZATIONS

    default = ExportOptions()
    flags.DEFINE_string("workdir", None, "Training workdir (kpt_tf.train's output) or a .keras file.")
    flags.DEFINE_string("out", None, "Output SavedModel directory, or the .tflite file with --format tflite.")
    flags.DEFINE_enum("format", default.format, ["savedmodel", "tflite"],
                      "savedmodel: the serving graph (crop, network, flip test, decode); tflite: the network alone.")
    flags.DEFINE_enum("quantize", default.quantize, list(QUANTIZATIONS),
                      "TFLite post-training quantisation (int8 needs --calibration_data).")
    flags.DEFINE_string("calibration_data", None, "Records directory whose crops calibrate --quantize int8.")
    flags.DEFINE_string("calibration_split", "val", "Split of --calibration_data to calibrate on.")
    flags.DEFINE_enum("which", "best", ["best", "final"], "Best-validation or last-epoch model.")
    flags.DEFINE_bool("flip_test", default.flip_test, "Average with the mirrored image inside the served graph.")
    flags.DEFINE_integer("max_image_pixels", default.max_image_pixels, "Served images with more pixels (height x "
                         "width) are refused before they are read: bounds the server's memory.", lower_bound=1)
    flags.DEFINE_bool("xla", default.xla, "Compile the network with XLA inside the served graph (faster at small "
                      "batches; TF Serving on CPU then needs --xla_cpu_compilation_enabled=true).")


def main(argv):
    del argv
    f = flags.FLAGS
    if not f.workdir or not f.out:
        raise app.UsageError("--workdir and --out are required")
    # refusals: kpt_tf.cli prints them
    if f.format == "tflite":
        if f.xla:
            raise app.UsageError("--xla applies to a SavedModel; a TFLite file runs on the TFLite interpreter")
        out = export_workdir_tflite(f.workdir, f.out, f.which, f.quantize, f.calibration_data, f.calibration_split)
        print(f"TFLite file written to {out} ({out.stat().st_size / 1e6:.1f} MB, quantize={f.quantize}); run it "
              f"with: python -m kpt_tf.predict --model {out} --input IMAGES --out DIR")
        return
    if f.quantize != "none" or f.calibration_data:
        raise app.UsageError("--quantize and --calibration_data apply to --format tflite")
    out = export_workdir(f.workdir, f.out, f.which,
                         ExportOptions(flip_test=f.flip_test, max_image_pixels=f.max_image_pixels, xla=f.xla))
    print(f"SavedModel written to {out}; inspect with: saved_model_cli show --dir {out} --all")


if __name__ == "__main__":
    define_flags()
    from kpt_tf import cli

    cli.run(main, "kpt_tf.export")

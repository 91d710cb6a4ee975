"""Training augmentation: its ranges (`AugmentConfig`), the stateless draw of one sample's transform, and the
warps that resample a stored crop onto the model input (per record, or per batch for "cv2"; kpt_tf.data.records
applies them).
"""

from __future__ import annotations

import dataclasses
import functools

import tensorflow as tf

from kpt_tf import geometry
from kpt_tf.data.schema import decode_crop


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (bearpaw/pytorch-pose ranges, sampled uniformly).

    rotation: uniform in +-rotation_deg (counter-clockwise positive), applied with rotation_prob.
    scale: factor on the person box side, uniform in [scale_min, scale_max]; > 1 shows more context
    (the person looks smaller). flip: horizontal, with flip_prob, when `flip` is on. colour: each RGB
    channel multiplied by a factor uniform in [color_min, color_max], clipped to 0..255.
    (bearpaw and HRNet draw rotation and scale from clipped normals instead; uniform gives the stated
    ranges exactly.)
    """

    rotation_deg: float = 30.0
    rotation_prob: float = 0.6
    scale_min: float = 0.75
    scale_max: float = 1.25
    flip: bool = True
    flip_prob: float = 0.5
    color_min: float = 0.8
    color_max: float = 1.2

    def __post_init__(self):
        problems = []
        if self.rotation_deg < 0:
            problems.append(f"rotation_deg {self.rotation_deg} < 0")
        for name in ("rotation_prob", "flip_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} {getattr(self, name)} not in [0, 1]")
        if not 0 < self.scale_min <= self.scale_max:
            problems.append(f"scale range [{self.scale_min}, {self.scale_max}] must satisfy 0 < min <= max")
        if not 0 <= self.color_min <= self.color_max:
            problems.append(f"colour range [{self.color_min}, {self.color_max}] must satisfy 0 <= min <= max")
        if problems:
            raise ValueError("AugmentConfig: " + "; ".join(problems))

    @classmethod
    def from_config(cls, config) -> "AugmentConfig":
        """From a dict / ml_collections ConfigDict with (a subset of) the field names."""
        items = dict(config.items() if hasattr(config, "items") else config)
        unknown = sorted(set(items) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"AugmentConfig: unknown fields {unknown}")
        return cls(**items)

    def get_config(self) -> dict:
        return dataclasses.asdict(self)


def sample_augmentation(key, augment: AugmentConfig):
    """Stateless draw of (rotation_deg, scale, flip, colour[3]) from an int64 key."""
    seed = tf.stack([tf.cast(key, tf.int64), tf.constant(0x5EED, tf.int64)])
    u = tf.random.stateless_uniform([7], seed=seed, dtype=tf.float32)
    # one Unpack instead of seven slices: this runs once per training record (BUILD_NOTES, input pipeline)
    u0, u1, u2, u3, *u_colour = tf.unstack(u)
    rotation = tf.where(u0 < augment.rotation_prob, (2.0 * u1 - 1.0) * augment.rotation_deg, 0.0)
    scale = augment.scale_min + u2 * (augment.scale_max - augment.scale_min)
    flip = (u3 < augment.flip_prob) if augment.flip else tf.constant(False)
    colour = augment.color_min + tf.stack(u_colour) * (augment.color_max - augment.color_min)
    return rotation, scale, flip, colour


# --- the warp --------------------------------------------------------------------------------------

def warp_image(image, input_to_source, output_size: int):
    """Bilinear resampling of `image` [H, W, C] onto an output square, constant fill 0, float32 result.

    Output pixel p shows source pixel M p, M = `input_to_source` (2x3, the inverse of the joint transform).
    A neighbour outside the image reads 0, so borders blend into the fill exactly as
    ImageProjectiveTransformV3(BILINEAR, CONSTANT 0) does (`projective_warp`; they agree to 2e-3 grey
    levels). Written with gathers so that XLA fuses it: 0.4 ms CPU per 256 px output instead of the raw
    op's 1.4 ms (measured on 2 cores), which made the warp, not JPEG decoding, the pipeline's bottleneck.
    """
    image = tf.convert_to_tensor(image)
    m = tf.cast(input_to_source, tf.float32)
    shape = tf.shape(image)
    height, width, channels = shape[0], shape[1], shape[2]
    padded = tf.reshape(tf.pad(image, [[1, 1], [1, 1], [0, 0]]), [-1, channels])
    grid = tf.range(output_size, dtype=tf.float32)
    gx = tf.tile(grid[None, :], [output_size, 1])
    gy = tf.tile(grid[:, None], [1, output_size])
    # Source coordinates in the padded image (+1: the zero border).
    sx = tf.reshape(m[0, 0] * gx + m[0, 1] * gy + m[0, 2] + 1.0, [-1])
    sy = tf.reshape(m[1, 0] * gx + m[1, 1] * gy + m[1, 2] + 1.0, [-1])
    # Far-away coordinates are clamped before the int cast; anything beyond the border reads zeros.
    sx = tf.clip_by_value(sx, -1.0, tf.cast(width, tf.float32) + 2.0)
    sy = tf.clip_by_value(sy, -1.0, tf.cast(height, tf.float32) + 2.0)
    x0f, y0f = tf.floor(sx), tf.floor(sy)
    fx, fy = (sx - x0f)[:, None], (sy - y0f)[:, None]
    x0, y0 = tf.cast(x0f, tf.int32), tf.cast(y0f, tf.int32)
    x0, x1 = tf.clip_by_value(x0, 0, width + 1), tf.clip_by_value(x0 + 1, 0, width + 1)
    y0, y1 = tf.clip_by_value(y0, 0, height + 1), tf.clip_by_value(y0 + 1, 0, height + 1)
    row = width + 2

    def pixel(y, x):
        return tf.cast(tf.gather(padded, y * row + x), tf.float32)

    top = pixel(y0, x0) * (1.0 - fx) + pixel(y0, x1) * fx
    bottom = pixel(y1, x0) * (1.0 - fx) + pixel(y1, x1) * fx
    return tf.reshape(top * (1.0 - fy) + bottom * fy, [output_size, output_size, channels])


def projective_warp(image, input_to_source, output_size: int):
    """`warp_image` with tf.raw_ops.ImageProjectiveTransformV3 (the reference; slower on CPU)."""
    transform = tf.concat([tf.reshape(tf.cast(input_to_source, tf.float32), [6]), tf.zeros([2], tf.float32)], 0)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, tf.float32)[None], transforms=transform[None],
        output_shape=tf.constant([output_size, output_size], tf.int32), fill_value=tf.constant(0.0),
        interpolation="BILINEAR", fill_mode="CONSTANT")[0]


# "cv2": OpenCV decodes and warps each batch after `batch` (`make_batch_renderer`, one py-function call per batch);
# the others decode with TF (`schema.decode_crop`, fast DCT) and warp per record. OpenCV decodes with libjpeg's
# accurate DCT (as PIL, and so bearpaw's and mmpose's loaders, do): about a grey level from TF's fast DCT on average.
# With the warp's own differences at sharp edges (cv2 samples at 1/32 px and rounds before the colour factor), its
# images are within a few grey levels of the others'; the joints are the same bit for bit (`records._placing`, per
# record or per batch). Measured on an idle Intel Xeon (BUILD_NOTES, input pipeline): the training stream's CPU per
# image 1.48-1.53 ms with "cv2" against ~2.0 ms with "xla" (1.44-1.48x and ~2x the decode + warp floor).
WARPS = ("xla", "cv2", "projective_transform")
# The training stream's warp (config `data.warp`): the cheapest, since augmentation's own noise dwarfs a grey level.
TRAINING_WARP = "cv2"
# What a run trained with before the config had `data.warp` (2026-12-08): how its config.json reads back.
WARP_BEFORE_THE_KEY = "xla"
# Every other stream's (evaluation, validation, calibration): "xla" equals ImageProjectiveTransformV3, the op an
# export crops with in its graph, to 2e-3 grey levels, so a model is scored on the pixels it is served.
DEFAULT_WARP = "xla"
BATCHED_WARPS = ("cv2",)     # rendered after `batch` (`make_batch_renderer`)


def check_warp(warp: str, what: str = "warp") -> None:
    """Refuse a warp that is not one of WARPS, naming it as `what` (e.g. the config key)."""
    if warp not in WARPS:
        raise ValueError(f"{what} = {warp!r}: must be one of {', '.join(WARPS)}")


@functools.lru_cache(maxsize=None)
def make_renderer(input_size: int, warp: str):
    """(crop's JPEG, crop->input affine, colour [3], image id) -> model input uint8 [S, S, 3]: decode, one warp,
    colour, clip (the id names the record in `make_batch_renderer`'s messages; TF's decode error names none).

    A warp applied per batch ("cv2") has no per-record renderer: `make_batch_renderer`."""
    check_warp(warp)
    if warp in BATCHED_WARPS:
        raise ValueError(f"warp {warp!r} renders whole batches: use make_batch_renderer")

    def render(crop, input_to_crop, colour):
        sampler = warp_image if warp == "xla" else projective_warp
        pixels = sampler(crop, input_to_crop, input_size) * colour
        return tf.cast(tf.round(tf.clip_by_value(pixels, 0.0, 255.0)), tf.uint8)

    # XLA fuses the sampler's elementwise work into one loop; it compiles once per crop shape.
    warp_crop = tf.function(render, jit_compile=True, autograph=False) if warp == "xla" else render
    return lambda encoded, crop_to_input, colour, image_id: warp_crop(
        decode_crop(encoded), geometry.invert_affine(crop_to_input, backend="tf"), colour)


def make_batch_renderer(input_size: int, warp: str):
    """None for a warp applied per record; else (the crops' JPEGs [B], crop->input affines [B, 2, 3], colours
    [B, 3], the records' image ids [B], for messages) -> model inputs uint8 [B, S, S, 3], what `make_renderer`
    gives per record."""
    check_warp(warp)
    if warp not in BATCHED_WARPS:
        return None

    # The affine as it is: OpenCV inverts it itself (in double precision), which spares the ~20 small TF ops of
    # `invert_affine` (BUILD_NOTES, input pipeline).
    def render_batch(crops, crop_to_input, colours, image_ids):
        pixels = tf.numpy_function(functools.partial(_cv2_render_batch, input_size=input_size),
                                   [crops, crop_to_input, colours, image_ids], tf.uint8, stateful=False,
                                   name="cv2_warp")
        pixels.set_shape([None, input_size, input_size, 3])
        return pixels

    return render_batch


def _cv2_render_batch(encoded, crop_to_input, colours, image_ids, input_size: int):
    # One Python call per batch: a py-function call costs ~0.5 ms, as much as the warp (BUILD_NOTES). OpenCV releases
    # the GIL inside imdecode, warpAffine and multiply, so parallel batches run in parallel.
    import cv2
    import numpy as np

    out = np.empty((len(encoded), input_size, input_size, 3), np.uint8)
    for i, (jpeg, m, colour, image_id) in enumerate(zip(encoded, crop_to_input, colours, image_ids)):
        crop = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR_RGB)
        if crop is None:
            raise ValueError(f"the stored crop of a person of image {image_id.decode(errors='replace')!r} "
                             f"({len(jpeg)} bytes) is not a JPEG OpenCV can decode")
        # output pixel p samples the crop at M^-1 p (OpenCV inverts M), as `warp_image`; outside reads 0
        warped = cv2.warpAffine(crop, m.astype(np.float64), (input_size, input_size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        # per-channel factor, rounded and saturated to 0..255 (as round(clip(x)) on the float warp)
        out[i] = cv2.multiply(warped, (float(colour[0]), float(colour[1]), float(colour[2]), 0.0))
    return out

"""Predict keypoints for an evaluation dataset: flip test, decoding, mapping back to the source image.

Shared by training-time validation (callbacks), `kpt_tf.evaluate --model` and the demo, so every number
the project reports comes from one prediction path: records -> pipeline -> model -> codec -> metric.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from kpt_tf.codec import HeatmapCodec
from kpt_tf.geometry import apply_affine_batch
from kpt_tf.joints import JointSubset
from kpt_tf.models import outputs
from kpt_tf.models.folding import FoldedForward


@dataclasses.dataclass
class Predictions:
    """Per-person predictions and the ground truth they are scored against, in source-image pixels."""

    joints: np.ndarray        # [N, J, 2] predicted, 0-based source-image pixels
    scores: np.ndarray        # [N, J] heatmap maxima
    gt_joints: np.ndarray     # [N, J, 2] ground truth, 0-based source-image pixels
    annotated: np.ndarray     # [N, J] bool
    head_boxes: np.ndarray    # [N, 4] x1, y1, x2, y2 (0 when unknown)
    has_head_box: np.ndarray  # [N] bool
    dataset_index: np.ndarray  # [N] position of the person in its split of the source annotations
    images: list | None = None  # model-input crops (uint8) when kept, for drawing
    input_joints: np.ndarray | None = None  # [N, J, 2] predictions in model-input pixels
    visible: np.ndarray | None = None  # [N, J] bool: annotated and not occluded (None: unknown)
    image_names: np.ndarray | None = None  # [N] str: each person's source image (the records' image/id)
    box_sides: np.ndarray | None = None    # [N] side of the person box the model input shows, source-image pixels


class FinalStage:
    """A network's final heatmaps (float32) for float32 crops [N, S, S, 3], as one `tf.function` traced once.

    Every graph that runs the network calls this one function: both passes of the flip test and every serving
    endpoint of an export, which traced the network seven times before (BUILD_NOTES, Evaluation and export:
    the export of a 2-stack test network went from 44.7 s to 41.2 s on a slow CPU; TF's SavedModel writer is
    the rest). It runs the network with batch norm folded into the convolution before it
    (`kpt_tf.models.folding`: the same output to float rounding, ~5 % less time at batch 1 and 8 on hg2_256).

    `jit_compile=True` compiles the network with XLA (an opt-in export, `kpt_tf.export --xla`): at batch 1 the
    demo network's ~3,100 graph ops cost more in per-op dispatch than in arithmetic, which XLA's fused kernels
    remove (BUILD_NOTES, Speed against PyTorch)."""

    def __init__(self, net: keras.Model, jit_compile: bool = False):
        self.net = net
        # batch norm folded into the convolution before it (kpt_tf.models.folding): the same output to rounding
        self.forward = FoldedForward(net)
        size = net.inputs[0].shape[1:3]
        # None, not False, when off: the function stays as before, open to TF's global JIT settings
        self.function = tf.function(self._final, autograph=False, jit_compile=True if jit_compile else None,
                                    input_signature=[tf.TensorSpec([None, *size, 3], tf.float32, name="crops")])

    def _final(self, images):
        return tf.cast(outputs.final_heatmaps(self.forward(images)), tf.float32)

    def __call__(self, images):
        return self.function(images)


def final_heatmaps(net, images, flip_permutation=None, flip_shift: bool = False):
    """The final heatmaps (float32) of `net` (a Keras network or its `FinalStage`) for float32 images
    [N, S, S, 3]; with a flip permutation, the average with the mirrored pass flipped back (the flip test).
    Plain TF: training-time validation, evaluation and the exported serving graph all call this one function."""
    stage = net if isinstance(net, FinalStage) else FinalStage(net)
    heatmaps = stage(images)
    if flip_permutation is not None:
        mirrored = stage(tf.reverse(images, axis=[2]))
        heatmaps = 0.5 * (heatmaps + HeatmapCodec.flip_back(mirrored, flip_permutation, shift=flip_shift))
    return heatmaps


def flip_permutation_or_none(subset: JointSubset, flip_test: bool):
    """The subset's flip permutation when the flip test is asked for and possible (flip-closed subsets)."""
    return subset.flip_permutation() if flip_test and subset.is_flip_closed else None


def net_heatmaps_fn(net: keras.Model, subset: JointSubset, flip_test: bool = True, flip_shift: bool = False):
    """A compiled images -> final heatmaps function for a Keras network and its joint subset."""
    permutation = flip_permutation_or_none(subset, flip_test)
    stage = FinalStage(net)

    @tf.function(reduce_retracing=True, autograph=False)    # plain tensor code: nothing for AutoGraph to convert
    def predict(images):
        return final_heatmaps(stage, tf.cast(images, tf.float32), permutation, flip_shift)

    return predict


def predict_dataset(predict, dataset: tf.data.Dataset, codec: HeatmapCodec, keep_images: int = 0,
                    max_people: int = 0) -> Predictions:
    """Run `predict` (images -> final heatmaps, e.g. `net_heatmaps_fn(net, subset)` or an exported
    SavedModel's `heatmaps` endpoint) over a dataset built with `make_dataset(..., with_meta=True)`."""
    parts: dict[str, list] = {k: [] for k in ("joints", "scores", "gt", "annotated", "box", "has_box", "index",
                                              "input", "visible", "image", "side")}
    kept: list[np.ndarray] = []
    seen = 0
    for batch in dataset:
        heatmaps = predict(tf.cast(batch["image"], tf.float32))
        input_joints, scores = codec.decode(heatmaps)
        affine = batch["input_to_image"].numpy()
        input_joints = input_joints.numpy().astype(np.float64)
        parts["input"].append(input_joints)
        parts["joints"].append(apply_affine_batch(affine, input_joints))
        parts["gt"].append(apply_affine_batch(affine, batch["joints"].numpy()))
        parts["scores"].append(scores.numpy())
        parts["annotated"].append(batch["annotated"].numpy().astype(bool))
        parts["box"].append(batch["head_box"].numpy())
        parts["has_box"].append(batch["has_head_box"].numpy().astype(bool))
        parts["index"].append(batch["dataset_index"].numpy())
        parts["visible"].append(batch["visible"].numpy().astype(bool))
        parts["image"].append(np.array([v.decode() for v in batch["image_id"].numpy()], object))
        # the un-augmented input shows one person box: its side is the input's, scaled by the affine's area factor
        parts["side"].append(codec.input_size * np.sqrt(np.abs(np.linalg.det(affine[:, :, :2]))))
        if len(kept) < keep_images:
            kept.extend(list(batch["image"].numpy()[: keep_images - len(kept)]))
        seen += int(batch["image"].shape[0])
        if max_people and seen >= max_people:
            break
    if not parts["joints"]:
        raise ValueError("the evaluation dataset is empty")
    cat = {k: np.concatenate(v)[: max_people or None] for k, v in parts.items()}
    return Predictions(joints=cat["joints"], scores=cat["scores"], gt_joints=cat["gt"],
                       annotated=cat["annotated"], head_boxes=cat["box"], has_head_box=cat["has_box"],
                       dataset_index=cat["index"], images=kept or None, input_joints=cat["input"],
                       visible=cat["visible"], image_names=cat["image"], box_sides=cat["side"])

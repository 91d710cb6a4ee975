"""The project's PyTorch hourglass (kpt_tf/interop/torch_hourglass.py) and the Keras hourglass against the structure
of bearpaw's own code: every state_dict key and shape, read off bearpaw's `HourglassNet` (data file beside this test),
and the parameter counts of bearpaw's and the FPD authors' networks counted on their code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kpt_tf.interop.bearpaw import to_kpt_weights
from kpt_tf.interop.torch_hourglass import HourglassNet
from kpt_tf.models.hourglass import build_hourglass
from kpt_tf.models.weights import plan_copy, trainable_parameter_count

REFERENCE = json.loads((Path(__file__).parent / "data" / "bearpaw_hg_state_dict_shapes.json").read_text())
# sum(p.numel() for p in net.parameters()) of the reference code (BUILD_NOTES.md, "Checkpoint import"): bearpaw's
# hg(num_stacks=S, num_blocks=1) and FPD's HourglassNet with NUM_FEATURES 128, NUM_STACKS 4, NUM_BLOCKS 1.
BEARPAW_PARAMETERS = {1: 3_586_960, 2: 6_730_912, 8: 25_594_624}
FPD_STUDENT_4X128_PARAMETERS = 3_287_936


def _count(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("stacks", [1, 2])
def test_state_dict_keys_and_shapes_are_bearpaws(stacks):
    reference = {k: tuple(v) for k, v in REFERENCE[f"hg_s{stacks}_b1"].items()}
    ours = {k: tuple(v.shape) for k, v in HourglassNet(stacks, 1, 16).state_dict().items()}
    assert list(ours) == list(reference)
    assert ours == reference
    # The stem as bearpaw builds it: layer2 widens 128 -> 256 with a projection, layer3 keeps 256.
    assert reference["layer2.0.downsample.0.weight"] == (256, 128, 1, 1)
    assert "layer3.0.downsample.0.weight" not in reference


@pytest.mark.parametrize("stacks", [1, 2, 8])
def test_parameter_counts_are_those_of_the_reference_code(stacks):
    assert _count(HourglassNet(stacks, 1, 16)) == BEARPAW_PARAMETERS[stacks]
    assert trainable_parameter_count(build_hourglass(stacks, 256, 16, input_size=64)) == BEARPAW_PARAMETERS[stacks]


def test_fpd_student_counts_are_those_of_the_authors_code():
    assert _count(HourglassNet(4, 1, 16, channels=128, stem_widths=(32, 64))) == FPD_STUDENT_4X128_PARAMETERS
    keras_net = build_hourglass(4, 128, 16, input_size=64, stem="scaled")
    assert trainable_parameter_count(keras_net) == FPD_STUDENT_4X128_PARAMETERS


@pytest.mark.parametrize("stacks", [1, 2])
def test_every_reference_tensor_has_a_keras_weight_of_its_shape(stacks):
    """The Keras network checked against the reference data directly, not through the PyTorch copy."""
    zeros = {k: np.zeros(v, np.float32) for k, v in REFERENCE[f"hg_s{stacks}_b1"].items()}
    weights, unused, _ = to_kpt_weights(zeros, stacks, 1)
    assert not unused
    plan = plan_copy(build_hourglass(stacks, 256, 16, input_size=64), weights)
    assert not plan.only_in_source and not plan.only_in_target and not plan.shape_mismatched

"""The one copy by name (kpt_tf/models/weights.copy_by_name): each strictness rule refuses what it names and only
that, a refusal names the source and the differing weights and assigns nothing, and no other module of kpt_tf
plans a copy of its own."""

from __future__ import annotations

import ast

import keras
import numpy as np
import pytest

from kpt_tf.joints import JointSubset
from kpt_tf.models import build_net
from kpt_tf.models.weights import (
    EVERY_DIFFERENCE,
    EXTRA,
    MISSING,
    SHAPE,
    CopyRefused,
    copy_by_name,
    plan_copy,
    weights_by_name,
)
from tests.conftest import REPO


def dense_net(widths=(4, 3), names=("body", "head"), seed=0):
    """A few named Dense layers on a 2-vector: enough weights by name, built in milliseconds."""
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((2,))
    for width, name in zip(widths, names):
        x = keras.layers.Dense(width, name=name)(x)
    return keras.Model(inputs, x)


def assert_untouched(net, before):
    for name, value in weights_by_name(net).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_a_complete_source_is_copied_whole_under_every_rule():
    source, target = dense_net(seed=1), dense_net(seed=2)
    plan = copy_by_name(target, weights_by_name(source), "source.keras", refuse=EVERY_DIFFERENCE)
    assert sorted(name for name, _ in plan.copied) == ["body/bias", "body/kernel", "head/bias", "head/kernel"]
    for name, value in weights_by_name(source).items():
        np.testing.assert_array_equal(weights_by_name(target)[name], value)


def test_missing_weights_are_refused_only_when_the_caller_says_so():
    source = weights_by_name(dense_net(seed=1))
    del source["head/bias"]
    target = dense_net(seed=2)
    before = weights_by_name(target)
    with pytest.raises(CopyRefused, match=r"^lacking.keras: .*1 of the network's weights missing \(head/bias\)") as e:
        copy_by_name(target, source, "lacking.keras", refuse={MISSING})
    assert e.value.difference == MISSING and isinstance(e.value, ValueError)
    assert_untouched(target, before)
    plan = copy_by_name(target, source, "lacking.keras", refuse={SHAPE, EXTRA})
    assert [name for name, _ in plan.only_in_target] == ["head/bias"]
    np.testing.assert_array_equal(target.get_layer("head").bias.numpy(), before["head/bias"])   # stays fresh
    np.testing.assert_array_equal(target.get_layer("head").kernel.numpy(), source["head/kernel"])


def test_shape_mismatches_are_refused_only_when_the_caller_says_so():
    source = weights_by_name(dense_net(widths=(4, 5), seed=1))
    target = dense_net(widths=(4, 3), seed=2)
    before = weights_by_name(target)
    with pytest.raises(CopyRefused, match=r"wide.keras: .*2 weights of another shape \(head/kernel \(4, 5\) not "
                                          r"\(4, 3\), head/bias \(5,\) not \(3,\)\)") as e:
        copy_by_name(target, source, "wide.keras", refuse={SHAPE})
    assert e.value.difference == SHAPE
    assert_untouched(target, before)
    plan = copy_by_name(target, source, "wide.keras", refuse={MISSING, EXTRA})
    assert {name for name, *_ in plan.shape_mismatched} == {"head/kernel", "head/bias"}
    np.testing.assert_array_equal(target.get_layer("body").kernel.numpy(), source["body/kernel"])
    np.testing.assert_array_equal(target.get_layer("head").kernel.numpy(), before["head/kernel"])


def test_extra_source_weights_are_refused_only_when_the_caller_says_so():
    source = weights_by_name(dense_net(widths=(4, 3, 3), names=("body", "head", "second_head"), seed=1))
    target = dense_net(seed=2)
    before = weights_by_name(target)
    with pytest.raises(CopyRefused, match=r"larger.keras: .*2 weights the network has no place for "
                                          r"\(second_head/bias, second_head/kernel\)") as e:
        copy_by_name(target, source, "larger.keras", refuse={EXTRA})
    assert e.value.difference == EXTRA
    assert_untouched(target, before)
    plan = copy_by_name(target, source, "larger.keras", refuse={MISSING, SHAPE})
    assert len(plan.copied) == 4 and [n for n, _ in plan.only_in_source] == ["second_head/bias", "second_head/kernel"]


def test_a_refusal_names_every_refused_difference_and_a_copy_of_nothing_is_always_refused():
    source = weights_by_name(dense_net(widths=(4, 5, 2), names=("body", "head", "extra"), seed=1))
    del source["body/bias"]
    with pytest.raises(CopyRefused, match=r"missing \(body/bias\); .* another shape .*; .* no place for"):
        copy_by_name(dense_net(), source, "src", refuse=EVERY_DIFFERENCE)
    other = weights_by_name(dense_net(names=("a", "b"), seed=1))
    with pytest.raises(CopyRefused, match="other.keras: no weight of it matches") as e:
        copy_by_name(dense_net(), other, "other.keras", refuse=())
    assert e.value.difference == "nothing"
    with pytest.raises(ValueError, match="refuse=.*'missin'"):
        copy_by_name(dense_net(), weights_by_name(dense_net()), "src", refuse={"missin"})


def test_skipped_layers_and_layers_another_source_fills_are_no_difference():
    source = weights_by_name(dense_net(widths=(4, 5), seed=1))     # the head differs
    source["head_extra/kernel"] = np.zeros((2, 2), np.float32)    # a layer of a name the skip covers
    target = dense_net(seed=2)
    before = weights_by_name(target)
    plan = copy_by_name(target, source, "src", refuse=EVERY_DIFFERENCE, skip=lambda layer: layer.startswith("head"),
                        apply=False)
    assert {name for name, _ in plan.skipped} == {"head/kernel", "head/bias"} and len(plan.copied) == 2
    assert_untouched(target, before)                 # apply=False: planned and checked, nothing assigned
    plan.apply()
    np.testing.assert_array_equal(target.get_layer("body").kernel.numpy(), source["body/kernel"])
    np.testing.assert_array_equal(target.get_layer("head").kernel.numpy(), before["head/kernel"])
    body_only = {k: v for k, v in weights_by_name(dense_net(seed=3)).items() if k.startswith("body")}
    plan = copy_by_name(dense_net(seed=4), body_only, "src", refuse=EVERY_DIFFERENCE, may_lack=("head",))
    assert {n for n, _ in plan.only_in_target} == {"head/bias", "head/kernel"}
    with pytest.raises(CopyRefused, match="missing"):
        copy_by_name(dense_net(seed=4), body_only, "src", refuse=EVERY_DIFFERENCE, may_lack=("neck",))


def test_no_module_of_kpt_tf_plans_a_copy_by_name_of_its_own():
    """`plan_copy` is called only inside kpt_tf/models/weights.py: every copy goes through `copy_by_name`, whose
    strictness each caller states; the four callers (rebuild for training, distillation's student, checkpoint
    import, KPTransfer) call it."""
    callers, planners = set(), set()
    for path in sorted((REPO / "kpt_tf").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                relative = str(path.relative_to(REPO))
                if name == "plan_copy":
                    planners.add(relative)
                elif name == "copy_by_name":
                    callers.add(relative)
    assert planners == {"kpt_tf/models/weights.py"}
    assert {"kpt_tf/trained.py", "kpt_tf/distill/trainer.py", "kpt_tf/import_checkpoint.py",
            "kpt_tf/transfer.py"} <= callers


def test_plan_copy_matches_by_name_and_shape_and_assigns_only_on_apply():
    keras.utils.set_random_seed(0)
    source = build_net(_tiny("all"), JointSubset.parse("all"))
    keras.utils.set_random_seed(1)
    target = build_net(_tiny("upper"), JointSubset.parse("upper"))
    before = weights_by_name(target)
    plan = plan_copy(target, weights_by_name(source))
    assert {r[0].split("/")[0] for r in plan.shape_mismatched} == {"head0", "head1", "reinject0_heatmaps"}
    np.testing.assert_array_equal(target.get_layer("stem_conv").kernel.numpy(), before["stem_conv/kernel"])
    plan.apply()
    np.testing.assert_array_equal(target.get_layer("stem_conv").kernel.numpy(),
                                  source.get_layer("stem_conv").kernel.numpy())
    skipped = plan_copy(target, weights_by_name(source), skip=lambda name: name.startswith("head"))
    assert {r[0].split("/")[0] for r in skipped.skipped} == {"head0", "head1"}


def _tiny(joints="all", stacks=2):
    from configs.base import base_config

    c = base_config()
    c.joints = joints
    c.model.num_stacks, c.model.channels, c.model.depth, c.model.input_size = stacks, 16, 2, 64
    return c

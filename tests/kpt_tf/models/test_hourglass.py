"""Stacked hourglass: shapes, stable names, bearpaw parameter counts, FLOPs, serialisation, export."""

import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from kpt_tf.models.flops import flops_per_image, multiply_adds_per_image  # noqa: E402
from kpt_tf.models.hourglass import build_hourglass  # noqa: E402
from kpt_tf.models.weights import trainable_parameter_count  # noqa: E402

# A small but complete network: 2 stacks (so re-injection exists), full depth 4, 2 residuals per module.
TINY = dict(num_stacks=2, channels=32, depth=4, num_blocks=2, input_size=64)


def _tiny(num_joints=16, **overrides):
    return build_hourglass(num_joints=num_joints, **{**TINY, **overrides})


def _keras_default_base(class_name: str) -> str:
    """The base of the name Keras generates for an unnamed layer of this class (conv2d, re_lu, add...)."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# --- independent parameter / multiply-add counts, written from bearpaw's HourglassNet structure ---

def _conv_params(k, cin, cout):
    return k * k * cin * cout + cout


def _bottleneck_params(cin, cout):
    mid = cout // 2
    bns = 2 * (cin + mid + mid)
    skip = _conv_params(1, cin, cout) if cin != cout else 0
    return bns + _conv_params(1, cin, mid) + _conv_params(3, mid, mid) + _conv_params(1, mid, cout) + skip


def _bearpaw_params(stacks, c, joints, depth=4, blocks=1, stem_widths=(64, 128)):
    # bearpaw's stem: layer1 W0 -> W1, layer2 W1 -> 2 W1 (its `planes` is the running `inplanes`), layer3 2 W1 -> C.
    w0, w1 = stem_widths
    stem = (_conv_params(7, 3, w0) + 2 * w0 + _bottleneck_params(w0, w1) + _bottleneck_params(w1, 2 * w1)
            + _bottleneck_params(2 * w1, c))
    hourglass = (3 * depth + 1) * blocks * _bottleneck_params(c, c)
    stack = hourglass + blocks * _bottleneck_params(c, c) + _conv_params(1, c, c) + 2 * c + _conv_params(1, c, joints)
    reinject = _conv_params(1, c, c) + _conv_params(1, joints, c)
    return stem + stacks * stack + (stacks - 1) * reinject


def _bottleneck_macs(hw, cin, cout):
    mid = cout // 2
    return hw * (cin * mid + 9 * mid * mid + mid * cout + (cin * cout if cin != cout else 0))


def _bearpaw_macs(stacks, c, joints, size=256, depth=4, blocks=1):
    half, quarter = (size // 2) ** 2, (size // 4) ** 2
    stem = (half * 49 * 3 * 64 + _bottleneck_macs(half, 64, 128) + _bottleneck_macs(quarter, 128, 256)
            + _bottleneck_macs(quarter, 256, c))
    # Level d of the hourglass: upper branch at its input resolution, down/low (and bottom) one pool lower.
    hourglass, hw = 0, quarter
    for level in range(depth, 0, -1):
        per_res = _bottleneck_macs(hw, c, c)
        lower_modules = 3 if level == 1 else 2
        hourglass += blocks * (per_res + lower_modules * _bottleneck_macs(hw // 4, c, c))
        hw //= 4
    stack = hourglass + blocks * _bottleneck_macs(quarter, c, c) + quarter * (c * c + c * joints)
    reinject = quarter * (c * c + joints * c)
    return stem + stacks * stack + (stacks - 1) * reinject


# ------------------------------------------------------------------------------------------------

def test_outputs_shapes_dtypes_and_rescale():
    model = _tiny(num_joints=5)
    assert len(model.outputs) == 2
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    heatmaps = model(images, training=False)
    assert [tuple(h.shape) for h in heatmaps] == [(2, 16, 16, 5)] * 2
    assert all(h.dtype == "float32" for h in heatmaps)
    rescale = keras.Model(model.input, model.get_layer("input_rescale").output)
    np.testing.assert_allclose(rescale(np.full((1, 64, 64, 3), 255.0, "float32")), 1.0, rtol=1e-6)


def test_stem_conv_pads_like_pytorch():
    """7x7/2 conv with 3 zero pixels on every side (PyTorch padding=3), not Keras' asymmetric "same"."""
    model = build_hourglass(1, 32, 2, depth=1, input_size=32)
    images = np.random.default_rng(4).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    stem = keras.Model(model.input, model.get_layer("stem_conv").output)
    got = np.asarray(stem(images))
    kernel, bias = (np.asarray(w) for w in model.get_layer("stem_conv").weights)
    padded = np.pad(images[0] / 255.0, ((3, 3), (3, 3), (0, 0)))
    windows = np.stack([[padded[2 * i:2 * i + 7, 2 * j:2 * j + 7] for j in range(16)] for i in range(16)])
    expected = np.einsum("ijabc,abcd->ijd", windows, kernel) + bias
    np.testing.assert_allclose(got[0], expected, rtol=1e-4, atol=1e-4)


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError, match="input_size"):
        build_hourglass(2, 32, 16, depth=4, input_size=200)
    with pytest.raises(ValueError, match="num_stacks"):
        build_hourglass(0, 32, 16)


def test_names_are_deterministic_readable_and_variables_follow_them():
    first, second = _tiny(), _tiny()
    names = [layer.name for layer in first.layers]
    assert names == [layer.name for layer in second.layers]
    assert [v.path for v in first.weights] == [v.path for v in second.weights]
    for layer in first.layers:
        base = _keras_default_base(type(layer).__name__)
        assert not re.fullmatch(rf"{base}(_\d+)?", layer.name), layer.name
        assert not re.search(r"_\d+$", layer.name), layer.name
        for weight in layer.weights:
            assert weight.path == f"{layer.name}/{weight.name}"
    expected = {"image", "input_rescale", "stem_pad", "stem_conv", "stem_bn", "stem_relu", "stem_pool",
                "stem_res1_skip",
                "stem_res3_add", "hg0_up4_res2_conv2", "hg1_down1_res1_bn1", "hg0_bottom_res2_conv3",
                "hg1_low3_res1_relu2", "hg0_pool2", "hg1_upsample4", "hg1_merge1", "stack1_res2_add",
                "stack0_fc_conv", "stack0_fc_bn", "stack0_fc_relu", "head0", "head1",
                "reinject0_features", "reinject0_heatmaps", "reinject0_add"}
    assert expected <= set(names)
    assert "reinject1_add" not in names  # the last stack re-injects nothing
    assert "stem_res2_skip" in names  # 128 -> 256: bearpaw's layer2 widens, with a projection


def test_names_and_shapes_do_not_depend_on_the_joint_subset():
    nine, sixteen = _tiny(num_joints=9), _tiny(num_joints=16)
    assert [layer.name for layer in nine.layers] == [layer.name for layer in sixteen.layers]
    shapes_9 = {v.path: tuple(v.shape) for v in nine.weights}
    shapes_16 = {v.path: tuple(v.shape) for v in sixteen.weights}
    assert shapes_9.keys() == shapes_16.keys()
    differing = {path.split("/")[0] for path in shapes_9 if shapes_9[path] != shapes_16[path]}
    assert differing == {"head0", "head1", "reinject0_heatmaps"}


def test_parameter_count_matches_bearpaw_structure_for_other_settings():
    model = _tiny(num_joints=7)
    assert trainable_parameter_count(model) == _bearpaw_params(2, 32, 7, depth=4, blocks=2)
    assert multiply_adds_per_image(model) == _bearpaw_macs(2, 32, 7, size=64, depth=4, blocks=2)


def test_hg2_256_parameters_and_flops():
    model = build_hourglass(2, 256, 16)
    # bearpaw hg_s2_b1: sum(p.numel()) = 6,730,912, counted on bearpaw's own code (BN running stats are buffers
    # there, non-trainable here).
    assert trainable_parameter_count(model) == _bearpaw_params(2, 256, 16) == 6_730_912
    assert multiply_adds_per_image(model) == _bearpaw_macs(2, 256, 16)
    assert flops_per_image(model) == 2 * _bearpaw_macs(2, 256, 16)
    assert flops_per_image(model, include_elementwise=True) > flops_per_image(model)


def test_fpd_student_4x128_parameters():
    # FPD's own 4 x 128 network (stem C/4, C/2): 3,287,936 counted on its code; with bearpaw's fixed stem more.
    scaled = build_hourglass(4, 128, 16, stem="scaled")
    assert trainable_parameter_count(scaled) == _bearpaw_params(4, 128, 16, stem_widths=(32, 64)) == 3_287_936
    fixed = build_hourglass(4, 128, 16)
    assert trainable_parameter_count(fixed) == _bearpaw_params(4, 128, 16) == 3_550_272


@pytest.mark.slow
def test_hg8_256_parameters_and_flops():
    model = build_hourglass(8, 256, 16)
    count = trainable_parameter_count(model)
    assert count == _bearpaw_params(8, 256, 16) == 25_594_624
    assert 25.1e6 <= count <= 25.6e6  # published range for Newell's 8-stack network
    assert multiply_adds_per_image(model) == _bearpaw_macs(8, 256, 16)


def test_flops_of_plain_conv_and_dense_layers():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="c")(inputs)   # 4x4x4 outputs x 27 MACs
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)            # 4x4x4 outputs x 9 MACs
    x = keras.layers.Dense(5, name="d")(x)                                       # 4x4 rows x 4x5 MACs
    model = keras.Model(inputs, x)
    assert multiply_adds_per_image(model) == 64 * 27 + 64 * 9 + 16 * 20
    assert flops_per_image(model) == 2 * (64 * 27 + 64 * 9 + 16 * 20)


def test_synchronized_batch_norm_flag_reaches_every_bn_layer():
    for flag in (False, True):
        model = build_hourglass(2, 32, 16, depth=2, input_size=32, synchronized_bn=flag)
        bn_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
        # stem BN + 3 stem residuals; per stack (3 * depth + 1) hourglass residuals, 1 stack residual, fc BN
        assert len(bn_layers) == 1 + 3 * 3 + 2 * (3 * (3 * 2 + 1) + 3 + 1)
        assert all(layer.synchronized is flag for layer in bn_layers)
        assert all(layer.momentum == 0.9 and layer.epsilon == 1e-5 for layer in bn_layers)
    rebuilt = keras.Model.from_config(model.get_config())
    assert rebuilt.get_layer("stem_bn").synchronized is True


def test_config_round_trip_keeps_names_and_shapes():
    model = _tiny(num_joints=9)
    rebuilt = keras.Model.from_config(model.get_config())
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    assert [(v.path, tuple(v.shape)) for v in rebuilt.weights] == [(v.path, tuple(v.shape)) for v in model.weights]


def _randomise_bn_statistics(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape).astype("float32"))


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    model = build_hourglass(2, 32, 4, depth=2, input_size=32)
    _randomise_bn_statistics(model)
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = [np.asarray(h) for h in model(images, training=False)]
    path = tmp_path / "hourglass.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert [layer.name for layer in reloaded.layers] == [layer.name for layer in model.layers]
    for want, got in zip(expected, reloaded(images, training=False)):
        np.testing.assert_array_equal(want, np.asarray(got))


@pytest.mark.slow
def test_export_keeps_layer_variable_names(tmp_path):
    # Tracing for export costs about 0.1 s per layer: a one-level hourglass keeps this test short.
    model = build_hourglass(2, 32, 3, depth=1, input_size=32)
    _randomise_bn_statistics(model, seed=2)
    model.export(str(tmp_path / "saved_model"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    assert {v.name for v in loaded.variables} == {f"{v.path}:0" for v in model.weights}
    assert "stem_conv/kernel:0" in {v.name for v in loaded.variables}
    images = np.random.default_rng(3).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    served = loaded.serve(tf.constant(images))
    np.testing.assert_allclose(np.asarray(served[-1]), np.asarray(model(images, training=False)[-1]),
                               rtol=1e-5, atol=1e-5)


def test_model_class_subclass_is_built_functionally_and_trains_with_its_step():
    calls = []

    class CountingModel(keras.Model):
        def train_step(self, data):
            calls.append(1)
            return super().train_step(data)

    model = build_hourglass(2, 32, 3, depth=1, input_size=32, model_class=CountingModel, name="counting")
    assert isinstance(model, CountingModel) and model.name == "counting"
    model.compile(optimizer="sgd", loss=["mse", "mse"])
    images = np.zeros((2, 32, 32, 3), "float32")
    targets = [np.zeros((2, 8, 8, 3), "float32")] * 2
    model.fit(images, targets, epochs=1, batch_size=2, verbose=0)
    assert calls


def test_heads_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_hourglass(2, 32, 3, depth=1, input_size=32)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("stem_conv").compute_dtype == "float16"
    assert model.get_layer("head0").compute_dtype == "float32"
    heatmaps = model(np.zeros((1, 32, 32, 3), "float32"), training=False)
    assert all(h.dtype == "float32" for h in heatmaps)


def test_scaled_stem_matches_fpd_student_and_keeps_names():
    """stem="scaled" (FPD's code: stem widths C/4, C/2): the second stem residual widens to C, so the third needs no
    projection; every other name is bearpaw's stem's. At C = 256 the two stems are the same network."""
    scaled = build_hourglass(4, 128, 16, stem="scaled")
    bearpaw = build_hourglass(4, 128, 16)
    assert {layer.name for layer in bearpaw.layers} - {layer.name for layer in scaled.layers} == {"stem_res3_skip"}
    assert {layer.name for layer in scaled.layers} <= {layer.name for layer in bearpaw.layers}
    assert scaled.get_layer("stem_conv").filters == 32 and scaled.get_layer("stem_res1_conv3").filters == 64
    assert scaled.get_layer("stem_res2_conv2").filters == 64 and scaled.get_layer("stem_res2_conv3").filters == 128
    assert trainable_parameter_count(build_hourglass(1, 256, 16, stem="scaled")) == \
        trainable_parameter_count(build_hourglass(1, 256, 16)) == 3_586_960
    with pytest.raises(ValueError, match="stem must be one of"):
        build_hourglass(1, 32, 16, stem="wide")

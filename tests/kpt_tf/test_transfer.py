"""KPTransfer weight transfer: by-name copies, head mapping by joint name, freezing, refusals."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs.base import base_config
from kpt_tf.codec import HeatmapCodec
from kpt_tf.export import export_net
from kpt_tf.joints import JointSubset
from kpt_tf.models import build_net
from kpt_tf.training.trainer import PoseTrainer
from kpt_tf.transfer import TransferError, read_source, transfer_into, transfer_to_workdir


def tiny_config(joints: str, channels: int = 16, stacks: int = 2, depth: int = 1):
    c = base_config()
    c.joints = joints
    c.model.num_stacks, c.model.channels, c.model.depth, c.model.input_size = stacks, channels, depth, 64
    return c


def weights_by_name(net):
    return {v.path: np.array(v.numpy()) for v in net.weights}


@pytest.fixture(scope="module")
def source_16(tmp_path_factory):
    """A 16-joint source whose weights are all distinct from a fresh build (randomised)."""
    keras.utils.set_random_seed(1)
    net = build_net(tiny_config("all"), JointSubset.parse("all"))
    rng = np.random.default_rng(0)
    for v in net.weights:
        v.assign(rng.normal(size=v.shape).astype(np.float32) * 0.1 + (1.0 if "variance" in v.path else 0.0))
    d = tmp_path_factory.mktemp("source16")
    (d / "config.json").write_text(tiny_config("all").to_json())
    net.save(d / "best.keras")
    return net, d / "best.keras"


def fresh_target(joints: str, seed: int = 7, depth: int = 1):
    keras.utils.set_random_seed(seed)
    return build_net(tiny_config(joints, depth=depth), JointSubset.parse(joints))


def test_copy_by_name_and_fresh_heads(source_16):
    src_net, path = source_16
    target_joints = JointSubset.parse("upper")          # 9 joints: heads differ in shape
    net = fresh_target("upper")
    init = weights_by_name(net)
    report = transfer_into(net, read_source(path), target_joints, map_heads=False)
    src, got = weights_by_name(src_net), weights_by_name(net)
    for name, value in got.items():
        layer = name.split("/")[0]
        if layer.startswith("head") or layer.endswith("_heatmaps") and "kernel" in name:
            np.testing.assert_array_equal(value, init[name], err_msg=f"{name} should keep its initialisation")
        elif layer.endswith("_heatmaps"):  # the re-injection bias is joint-independent but not mapped
            np.testing.assert_array_equal(value, init[name])
        else:
            np.testing.assert_array_equal(value, src[name], err_msg=f"{name} should equal the source")
    assert report.copied and not report.shape_mismatched and not report.only_in_target
    assert {n.split("/")[0] for n, _ in report.heads_not_mapped} == {"head0", "head1", "reinject0_heatmaps"}


def test_map_heads_by_joint_name(source_16):
    src_net, path = source_16
    target_joints = JointSubset.parse("right_wrist,pelvis,left_knee,thorax")  # order differs from source
    net = fresh_target("right_wrist,pelvis,left_knee,thorax")
    report = transfer_into(net, read_source(path), target_joints, map_heads=True)
    src, got = weights_by_name(src_net), weights_by_name(net)
    all_joints = JointSubset.parse("all")
    for name in target_joints.names:
        t, s = target_joints.position(name), all_joints.position(name)
        np.testing.assert_array_equal(got["head1/kernel"][..., t], src["head1/kernel"][..., s])
        np.testing.assert_array_equal(got["head1/bias"][t], src["head1/bias"][s])
        np.testing.assert_array_equal(got["reinject0_heatmaps/kernel"][:, :, t, :],
                                      src["reinject0_heatmaps/kernel"][:, :, s, :])
    assert report.shared_joints == list(target_joints.names)


def saved_source(directory, joints: str, seed: int, depth: int = 1):
    """A source network on `joints`, every weight shifted off its initialisation, saved with its config."""
    keras.utils.set_random_seed(seed)
    src = build_net(tiny_config(joints, depth=depth), JointSubset.parse(joints))
    for v in src.weights:
        v.assign(v.numpy() + 1.0)
    (directory / "config.json").write_text(tiny_config(joints, depth=depth).to_json())
    src.save(directory / "best.keras")
    return src


def test_map_heads_new_joints_keep_init(tmp_path):
    src = saved_source(tmp_path, "upper", seed=3)
    target = JointSubset.parse("all")
    net = fresh_target("all")
    init = weights_by_name(net)
    transfer_into(net, read_source(tmp_path / "best.keras"), target, map_heads=True)
    got, s = weights_by_name(net), weights_by_name(src)
    upper = JointSubset.parse("upper")
    for name in target.names:
        t = target.position(name)
        if name in upper.names:
            np.testing.assert_array_equal(got["head0/kernel"][..., t], s["head0/kernel"][..., upper.position(name)])
        else:
            np.testing.assert_array_equal(got["head0/kernel"][..., t], init["head0/kernel"][..., t])


def test_left_right_same_shape_heads_are_not_copied_blindly(tmp_path):
    saved_source(tmp_path, "left", seed=5)
    net = fresh_target("right")
    init = weights_by_name(net)
    report = transfer_into(net, read_source(tmp_path / "best.keras"), JointSubset.parse("right"), map_heads=True)
    np.testing.assert_array_equal(weights_by_name(net)["head1/kernel"], init["head1/kernel"])
    assert report.shared_joints == []


@pytest.mark.slow
def test_frozen_layers_do_not_change_but_heads_do(source_16):
    _, path = source_16
    target_joints = JointSubset.parse("lower")
    net = fresh_target("lower")
    report = transfer_into(net, read_source(path), target_joints, map_heads=True, freeze=True)
    assert "stem_conv" in report.frozen_layers and "head0" not in report.frozen_layers
    before = weights_by_name(net)
    trainer = PoseTrainer(net, HeatmapCodec(input_size=64, heatmap_size=16, sigma=1.0))
    trainer.compile(optimizer=keras.optimizers.RMSprop(1e-2))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (4, 64, 64, 3)).astype(np.uint8)
    joints = rng.uniform(8, 56, (4, len(target_joints), 2)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(
        (images, {"joints": joints, "weights": np.ones((4, len(target_joints)), np.float32)})).batch(4)
    trainer.fit(ds, epochs=1, verbose=0, shuffle=False)
    after = weights_by_name(net)
    for layer in report.frozen_layers:
        for name in before:
            if name.split("/")[0] == layer:
                np.testing.assert_array_equal(after[name], before[name], err_msg=f"frozen {name} changed")
    assert not np.array_equal(after["head1/kernel"], before["head1/kernel"])


@pytest.mark.slow
def test_savedmodel_source_equals_keras_source(source_16, tmp_path):
    src_net, path = source_16
    export_net(src_net, HeatmapCodec(input_size=64, heatmap_size=16, sigma=1.0), JointSubset.parse("all"),
               tmp_path / "export")
    from_keras, from_sm = fresh_target("lower"), fresh_target("lower")
    transfer_into(from_keras, read_source(path), JointSubset.parse("lower"), map_heads=True)
    r = transfer_into(from_sm, read_source(tmp_path / "export"), JointSubset.parse("lower"), map_heads=True)
    a, b = weights_by_name(from_keras), weights_by_name(from_sm)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert r.shared_joints == list(JointSubset.parse("lower").names)


def test_refusals_write_nothing(source_16, tmp_path):
    _, path = source_16
    # Another architecture: different width -> body shapes differ.
    with pytest.raises(TransferError, match="differ beyond the heads|nothing but heads"):
        transfer_to_workdir(path, tiny_config("lower", channels=32), tmp_path / "w1", verbose=False)
    assert not (tmp_path / "w1").exists()
    # Different number of stacks: extra body layers only in the source.
    with pytest.raises(TransferError, match="differ beyond the heads"):
        transfer_to_workdir(path, tiny_config("lower", stacks=1), tmp_path / "w2", verbose=False)
    assert not (tmp_path / "w2").exists()
    # Unreadable source.
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a model")
    with pytest.raises(TransferError, match="cannot be read"):
        transfer_to_workdir(bad, tiny_config("lower"), tmp_path / "w3", verbose=False)
    assert not (tmp_path / "w3").exists()
    with pytest.raises(TransferError, match="does not exist"):
        transfer_to_workdir(tmp_path / "missing", tiny_config("lower"), tmp_path / "w4", verbose=False)
    # Nothing but heads: a source whose body names match nothing.
    keras.utils.set_random_seed(0)
    inp = keras.Input((64, 64, 3))
    other = keras.Model(inp, keras.layers.Conv2D(16, 1, name="head0")(inp))
    other.save(tmp_path / "other.keras")
    with pytest.raises(TransferError, match="nothing but heads"):
        transfer_to_workdir(tmp_path / "other.keras", tiny_config("all"), tmp_path / "w5", verbose=False,
                            source_joints="all", map_heads=True)
    assert not (tmp_path / "w5").exists()


def test_transfer_workdir_is_complete(source_16, tmp_path):
    _, path = source_16
    out = tmp_path / "target"
    transfer_to_workdir(path, tiny_config("lower"), out, map_heads=True, freeze=True, verbose=False)
    report = json.loads((out / "transfer_report.json").read_text())
    assert report["params"]["copied"] > 0 and report["target_joints"] == list(JointSubset.parse("lower").names)
    loaded = keras.saving.load_model(out / "init.keras", compile=False)
    assert not loaded.get_layer("stem_conv").trainable and loaded.get_layer("head0").trainable
    assert json.loads((out / "config.json").read_text())["joints"] == "lower"


# --- across keypoint layouts: MPII's 16 joints <-> COCO's 17 ---------------------------------------------------

MPII_ALL, COCO_ALL = JointSubset.parse("mpii16:all"), JointSubset.parse("coco17:all")
LIMBS = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
         "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")    # in COCO's order
FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
MPII_ONLY = ("pelvis", "thorax", "upper_neck", "head_top")
JOINT_WEIGHTS = {"head0/kernel": 3, "head0/bias": 0, "head1/kernel": 3, "head1/bias": 0,
                 "reinject0_heatmaps/kernel": 2}    # weight -> the axis that indexes joints


def joint_slice(values, weight: str, channel: int):
    return np.take(values[weight], channel, axis=JOINT_WEIGHTS[weight])


def assert_cross_layout_transfer(src, init, got, source_joints, target_joints, fresh_joints):
    """The shared joints' channels equal the source's (by name), `fresh_joints`' equal the target's initialisation,
    every other weight equals the source's (the trunk, and the joint-independent re-injection bias)."""
    for weight in JOINT_WEIGHTS:
        for joint in target_joints.names:
            t = target_joints.position(joint)
            expected = (joint_slice(init, weight, t) if joint in fresh_joints
                        else joint_slice(src, weight, source_joints.position(joint)))
            np.testing.assert_array_equal(joint_slice(got, weight, t), expected, err_msg=f"{weight} {joint}")
    trunk = [name for name in got if name not in JOINT_WEIGHTS]
    assert "stem_conv/kernel" in trunk and "reinject0_heatmaps/bias" in trunk
    for name in trunk:
        np.testing.assert_array_equal(got[name], src[name], err_msg=f"{name} should equal the source")


@pytest.fixture(scope="module")
def sources_by_layout(tmp_path_factory):
    """Depth-1 `all` networks of each layout, weights shifted off their initialisation, each saved beside a config
    whose joints name the layout: {layout: (weights by name, path of the .keras file)}."""
    sources = {}
    for seed, joints in enumerate(("mpii16:all", "coco17:all")):
        directory = tmp_path_factory.mktemp(joints.split(":")[0])
        net = saved_source(directory, joints, seed=10 + seed, depth=1)
        sources[joints.split(":")[0]] = weights_by_name(net), directory / "best.keras"
    return sources


def test_mpii_all_to_coco_all_maps_the_limbs_by_joint_name(sources_by_layout):
    src, path = sources_by_layout["mpii16"]
    net = fresh_target("coco17:all", depth=1)
    init = weights_by_name(net)
    report = transfer_into(net, read_source(path), COCO_ALL, map_heads=True)
    assert_cross_layout_transfer(src, init, weights_by_name(net), MPII_ALL, COCO_ALL, FACE)
    assert (report.source_layout, report.target_layout) == ("mpii16", "coco17")
    assert report.mapped_joints == list(LIMBS) and report.shared_joints == list(LIMBS)
    assert report.new_joints == list(FACE) and report.dropped_joints == list(MPII_ONLY)
    assert {r[0] for r in report.copied_in_part} == set(JOINT_WEIGHTS)
    assert "new joints (fresh head channels) (5): nose, left_eye" in report.text()


def test_coco_all_to_mpii_all_maps_the_limbs_back(sources_by_layout):
    src, path = sources_by_layout["coco17"]
    source = read_source(path)
    assert source.joints == COCO_ALL    # the layout from the config.json's `coco17:all`
    net = fresh_target("all", depth=1)
    init = weights_by_name(net)
    report = transfer_into(net, source, MPII_ALL, map_heads=True)
    assert_cross_layout_transfer(src, init, weights_by_name(net), COCO_ALL, MPII_ALL, MPII_ONLY)
    assert report.mapped_joints == [j for j in MPII_ALL.names if j in LIMBS]
    assert report.new_joints == list(MPII_ONLY) and report.dropped_joints == list(FACE)


def test_a_cross_layout_workdir_reports_the_joints(sources_by_layout, tmp_path):
    _, path = sources_by_layout["coco17"]
    mpii_order = [j for j in MPII_ALL.names if j in LIMBS]
    transfer_to_workdir(path, tiny_config("all", depth=1), tmp_path / "out", map_heads=True, verbose=False)
    saved = json.loads((tmp_path / "out" / "transfer_report.json").read_text())
    assert (saved["source_layout"], saved["target_layout"]) == ("coco17", "mpii16")
    assert saved["mapped_joints"] == mpii_order and saved["shared_joints"] == mpii_order
    assert saved["new_joints"] == list(MPII_ONLY) and saved["dropped_joints"] == list(FACE)
    assert saved["source_joints"] == list(COCO_ALL.names) and saved["target_joints"] == list(MPII_ALL.names)
    assert "keypoint layouts: coco17 -> mpii16" in (tmp_path / "out" / "transfer_report.txt").read_text()


def test_the_target_layout_is_its_records_as_training_reads_them(sources_by_layout, tmp_path):
    # `all-head` on COCO records (a manifest naming layout coco17) is COCO's 12 limb joints, as kpt_tf.train reads it
    _, path = sources_by_layout["mpii16"]
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "manifest.json").write_text(json.dumps({"layout": "coco17"}))
    config = tiny_config("all-head", depth=1)
    config.data.dir = str(tmp_path / "records")
    report = transfer_to_workdir(path, config, tmp_path / "out", map_heads=True, verbose=False)
    assert (report.target_layout, report.mapped_joints, report.new_joints) == ("coco17", list(LIMBS), [])
    assert report.dropped_joints == list(MPII_ONLY)


def test_source_joints_are_read_against_the_layout_the_source_records(sources_by_layout):
    _, path = sources_by_layout["coco17"]
    read_all = read_source(path, joints="all").joints                # COCO's `all`, not MPII's
    assert (read_all.layout.name, read_all.names) == ("coco17", COCO_ALL.names)
    with pytest.raises(TransferError, match="layout mpii16.*layout coco17"):
        read_source(path, joints="mpii16:all")


def test_layouts_sharing_no_joint_are_refused(tmp_path):
    saved_source(tmp_path, "pelvis,thorax,upper_neck,head_top", seed=6, depth=1)
    with pytest.raises(TransferError, match=r"mpii16:pelvis,thorax,upper_neck,head_top \(layout mpii16.*"
                                            r"coco17:head \(layout coco17\) share no joint"):
        transfer_to_workdir(tmp_path / "best.keras", tiny_config("coco17:head", depth=1), tmp_path / "out",
                            map_heads=True, verbose=False)
    assert not (tmp_path / "out").exists()

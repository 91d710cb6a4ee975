"""Importing bearpaw/pytorch-pose and FPD checkpoints (kpt_tf/import_checkpoint.py): numerically equal networks, and
refusals that name the problem and write nothing. The PyTorch networks are the project's copy, whose structure
tests/kpt_tf/interop/test_torch_hourglass.py checks against bearpaw's own code."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tensorflow as tf
import torch

from kpt_tf.import_checkpoint import import_checkpoint
from kpt_tf.interop.bearpaw import IMAGENET_MEAN, IMAGENET_STD, MPII_MEAN_RGB, CheckpointError
from kpt_tf.interop.torch_hourglass import HourglassNet, randomised, save_bearpaw_checkpoint, save_fpd_checkpoint
from kpt_tf.joints import JointSubset
from kpt_tf.models.outputs import stage_outputs
from kpt_tf.trained import load_trained

SIZE = 64


def torch_heatmaps(net, images_uint8):
    """bearpaw's preprocessing (RGB [0, 1] minus the MPII mean, no std) and forward, NHWC out."""
    x = torch.from_numpy(images_uint8.astype(np.float32) / 255.0 - np.float32(MPII_MEAN_RGB)).permute(0, 3, 1, 2)
    with torch.no_grad():
        return [o.permute(0, 2, 3, 1).numpy() for o in net(x)]


def fpd_torch_heatmaps(net, images_uint8):
    """FPD's preprocessing (HRNet's data code, COLOR_RGB false): the BGR image in [0, 1], ImageNet-normalised."""
    bgr = images_uint8[..., ::-1].astype(np.float32) / 255.0
    x = torch.from_numpy((bgr - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)).permute(0, 3, 1, 2)
    with torch.no_grad():
        return [o.permute(0, 2, 3, 1).numpy() for o in net(x)]


def assert_same_heatmaps(expected, got):
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        scale = float(np.abs(e).max())
        assert float(np.abs(e - g).max()) <= 1e-4 * scale, (float(np.abs(e - g).max()), scale)


def images(n=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3)).astype(np.uint8)


def imported(tmp_path, stacks, blocks=1, classes=16, joints="all", name="ckpt", legacy=False):
    torch_net = randomised(HourglassNet(stacks, blocks, classes), seed=stacks)
    path = tmp_path / f"{name}.pth.tar"
    save_bearpaw_checkpoint(torch_net, path, legacy=legacy)
    report = import_checkpoint(path, tmp_path / name, joints=joints, input_size=SIZE)
    return torch_net, load_trained(tmp_path / name), report


def heatmaps_of(trained, batch):
    return [o.numpy() for o in stage_outputs(trained.net(tf.constant(batch, tf.float32), training=False))]


# bearpaw's released hg_s1_b1, hg_s2_b1 and hg_s8_b1 were written by 2018's PyTorch (the legacy serialisation).
@pytest.mark.parametrize("stacks,blocks,legacy", [(1, 1, True), (2, 1, False),
                                                  pytest.param(8, 1, True, marks=pytest.mark.slow),
                                                  pytest.param(2, 2, False, marks=pytest.mark.slow)])
def test_imported_network_equals_the_pytorch_network_on_every_stack(tmp_path, stacks, blocks, legacy):
    torch_net, trained, report = imported(tmp_path, stacks, blocks, legacy=legacy)
    assert report["architecture"] == {"num_stacks": stacks, "num_blocks": blocks, "channels": 256, "num_classes": 16,
                                      "stem": "bearpaw"}
    assert report["tensors_used"] + len(report["tensors_ignored"]) == len(torch_net.state_dict())
    batch = images()
    assert_same_heatmaps(torch_heatmaps(torch_net, batch), heatmaps_of(trained, batch))


@pytest.mark.parametrize("stacks,channels", [(2, 128), pytest.param(4, 128, marks=pytest.mark.slow)])
def test_an_fpd_checkpoint_imports_with_its_scaled_stem_bgr_and_imagenet_normalisation(tmp_path, stacks, channels):
    """FPD's student layout: the bare state_dict (model_best.pth), stem C/4, C/2, fed BGR / ImageNet-normalised."""
    torch_net = randomised(HourglassNet(stacks, 1, 16, channels=channels, stem_widths=(channels // 4, channels // 2)),
                           seed=3)
    save_fpd_checkpoint(torch_net, tmp_path / "model_best.pth")
    report = import_checkpoint(tmp_path / "model_best.pth", tmp_path / "fpd", "fpd", input_size=SIZE)
    assert report["architecture"]["stem"] == "scaled" and report["channel_order"] == "bgr"
    trained = load_trained(tmp_path / "fpd")
    assert trained.codec().sigma == 2.0
    batch = images(seed=5)
    assert_same_heatmaps(fpd_torch_heatmaps(torch_net, batch), heatmaps_of(trained, batch))
    # Read as bearpaw's (RGB, MPII mean) the same weights see other pixels: the format matters.
    import_checkpoint(tmp_path / "model_best.pth", tmp_path / "as_bearpaw", "bearpaw", input_size=SIZE)
    wrong = heatmaps_of(load_trained(tmp_path / "as_bearpaw"), batch)[-1]
    assert float(np.abs(wrong - fpd_torch_heatmaps(torch_net, batch)[-1]).max()) > 1e-2


def test_a_joint_subset_network_imports_with_its_joints(tmp_path):
    upper = JointSubset.parse("upper")
    torch_net, trained, _ = imported(tmp_path, 2, classes=len(upper), joints="upper")
    assert trained.joints.names == upper.names
    batch = images(seed=1)
    for e, g in zip(torch_heatmaps(torch_net, batch),
                    stage_outputs(trained.net(tf.constant(batch, tf.float32), training=False))):
        assert float(np.abs(e - g).max()) <= 1e-4 * float(np.abs(e).max())
    with pytest.raises(CheckpointError, match="kpt_tf.transfer --map_heads"):
        import_checkpoint(tmp_path / "ckpt.pth.tar", tmp_path / "as_lower", joints="lower", input_size=SIZE)


@pytest.mark.slow
def test_the_imported_export_serves_the_pytorch_keypoints(tmp_path):
    from kpt_tf.export import export_workdir
    from kpt_tf.workdir import ExportOptions

    torch_net, trained, _ = imported(tmp_path, 2)
    served = tf.saved_model.load(str(export_workdir(tmp_path / "ckpt", tmp_path / "sm",
                                                    options=ExportOptions(flip_test=False))))
    crop = images(1, seed=2)
    # A box whose 1.25x padded square is exactly the crop: the crop transform is the identity.
    side, c = SIZE / 1.25, (SIZE - 1) / 2.0
    box = np.array([[c - side / 2, c - side / 2, c + side / 2, c + side / 2]], np.float32)
    out = served.signatures["serving_default"](images=tf.constant(crop), boxes=tf.constant(box))
    expected, _ = trained.codec().decode(torch_heatmaps(torch_net, crop)[-1])
    np.testing.assert_allclose(out["keypoints"].numpy(), expected.numpy(), atol=1e-3)


def test_wrong_truncated_and_foreign_checkpoints_are_refused_writing_nothing(tmp_path):
    torch_net = randomised(HourglassNet(1, 1, 16))
    good = tmp_path / "good.pth.tar"
    save_bearpaw_checkpoint(torch_net, good)
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="cannot be read"):
        import_checkpoint(truncated, tmp_path / "a", input_size=SIZE)
    with pytest.raises(CheckpointError, match="num_stacks 8, but the checkpoint has 1"):
        import_checkpoint(good, tmp_path / "b", num_stacks=8, input_size=SIZE)
    state = {k: v for k, v in torch_net.state_dict().items()}
    extra = dict(state, **{"extra_head.weight": torch.zeros(3)})
    torch.save({"state_dict": extra}, str(tmp_path / "extra.pth.tar"))
    with pytest.raises(CheckpointError, match="extra_head.weight"):
        import_checkpoint(tmp_path / "extra.pth.tar", tmp_path / "c", input_size=SIZE)
    missing = {k: v for k, v in state.items() if not k.startswith("layer2.")}
    torch.save({"state_dict": missing}, str(tmp_path / "missing.pth.tar"))
    with pytest.raises(CheckpointError, match="stem_res2"):
        import_checkpoint(tmp_path / "missing.pth.tar", tmp_path / "d", input_size=SIZE)
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, str(tmp_path / "other.pth.tar"))
    with pytest.raises(CheckpointError, match="not a bearpaw HourglassNet"):
        import_checkpoint(tmp_path / "other.pth.tar", tmp_path / "e", input_size=SIZE)
    # The stem of kpt_tf before 2026-12-06 (layer2 128 -> 128, layer3 128 -> 256) is nobody's network.
    old_stem = {k: v for k, v in state.items() if not k.startswith(("layer2.", "layer3."))}
    old_stem.update({f"layer2.0.{k}": v for k, v in HourglassNet(1, 1, 16).layer1[0].state_dict().items()
                     if not k.startswith("downsample")})
    torch.save(old_stem, str(tmp_path / "old_stem.pth"))
    with pytest.raises(CheckpointError, match="layer3|stem_res"):
        import_checkpoint(tmp_path / "old_stem.pth", tmp_path / "f", input_size=SIZE)
    narrow = HourglassNet(1, 1, 16, channels=128, stem_widths=(48, 96))
    torch.save(narrow.state_dict(), str(tmp_path / "narrow.pth"))
    with pytest.raises(CheckpointError, match=r"stem widths \(48, 96\)"):
        import_checkpoint(tmp_path / "narrow.pth", tmp_path / "g", "fpd", input_size=SIZE)
    diverged = {k: v.clone() for k, v in state.items()}
    diverged["hg.0.hg.1.0.0.conv2.weight"][0, 0, 0, 0] = float("nan")
    torch.save({"state_dict": diverged}, str(tmp_path / "diverged.pth.tar"))
    with pytest.raises(CheckpointError, match=r"1 tensors hold NaN or inf \(e.g. hg.0.hg.1.0.0.conv2.weight\)"):
        import_checkpoint(tmp_path / "diverged.pth.tar", tmp_path / "h", input_size=SIZE)
    assert not any((tmp_path / d).exists() for d in "abcdefgh")


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("touch RAN_CODE_MARKER",))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth.tar"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"conv1.weight": _RunsCode()}}, f)
    with pytest.raises(CheckpointError, match="weights-only"):
        import_checkpoint(path, tmp_path / "out", input_size=SIZE)
    assert not (tmp_path / "RAN_CODE_MARKER").exists() and not (tmp_path / "out").exists()

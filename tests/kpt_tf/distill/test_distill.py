"""Fast Pose Distillation (kpt_tf/distill): the loss formula, channel selection by joint name, a frozen teacher."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs.base import add_section, base_config
from kpt_tf import workdir as wd
from kpt_tf.codec import HeatmapCodec
from kpt_tf.distill.losses import DISTILL_LOSSES, fpd_stage_losses, teacher_term_weights
from kpt_tf.distill.teacher import Teacher, TeacherError
from kpt_tf.distill.trainer import _init_from
from kpt_tf.joints import JointSubset
from kpt_tf.models import build_net
from kpt_tf.models.hourglass import build_hourglass
from kpt_tf.models.weights import weights_by_name
from kpt_tf.trained import load_trained
from kpt_tf.training.trainer import make_trainer
from tests.test_untrusted import foreign_savedmodel

CODEC = HeatmapCodec(input_size=64, heatmap_size=16, sigma=2.0)


def tiny(joints="all", stacks=2):
    c = base_config()
    c.joints = joints
    c.model.num_stacks, c.model.channels, c.model.depth, c.model.input_size = stacks, 16, 1, 64
    c.codec.sigma = 2.0
    return c


@DISTILL_LOSSES.register("test_teacher_only")
def teacher_only(stage_outputs, gt_heatmaps, target_weights, teacher_heatmaps, alpha, kd_on_all_joints=False,
                 foreground_weight=0.0):
    """A distillation loss of the teacher term alone (what `distill.loss` selects, below)."""
    stages = fpd_stage_losses(stage_outputs, gt_heatmaps, target_weights, teacher_heatmaps, 1.0, kd_on_all_joints,
                              foreground_weight)
    return [(tf.zeros([]), kd, kd) for _, kd, _ in stages]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A saved 16-joint 'teacher' with random weights (what it predicts does not matter here)."""
    keras.utils.set_random_seed(11)
    net = build_net(tiny("all"), JointSubset.parse("all"))
    d = tmp_path_factory.mktemp("teacher")
    wd.save_config(tiny("all"), d)
    net.save(d / wd.BEST_MODEL)
    return d


def test_loss_is_the_formula_on_hand_made_tensors():
    rng = np.random.default_rng(0)
    s1, s2, gt, t = (tf.constant(rng.uniform(0, 1, (2, 4, 4, 3)), tf.float32) for _ in range(4))
    w = tf.constant([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # crop 2 is unlabelled

    def mse(a, b, weights):
        return float(np.mean(np.square(a.numpy() - b.numpy()) * weights[:, None, None, :]))

    kd_w = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    for alpha in (0.0, 0.5, 1.0):
        stages = fpd_stage_losses([s1, s2], gt, w, t, alpha)
        for (g, k, c), s in zip(stages, (s1, s2)):
            assert float(g) == pytest.approx(mse(s, gt, w.numpy()), rel=1e-5)
            assert float(k) == pytest.approx(mse(s, t, kd_w), rel=1e-5)
            assert float(c) == pytest.approx((1 - alpha) * mse(s, gt, w.numpy()) + alpha * mse(s, t, kd_w), rel=1e-5)
    np.testing.assert_array_equal(teacher_term_weights(w, kd_on_all_joints=True).numpy(), np.ones((2, 3)))


def test_teacher_channels_are_selected_by_joint_name(teacher_dir):
    teacher = Teacher(teacher_dir, JointSubset.parse("upper"), 64, 16)
    images = tf.random.uniform([2, 64, 64, 3], 0, 255, seed=3)
    full = teacher.net(images, training=False)[-1].numpy()
    upper = JointSubset.parse("upper")
    got = teacher(images).numpy()
    for k, name in enumerate(upper.names):
        np.testing.assert_allclose(got[..., k], full[..., JointSubset.parse("all").position(name)])


def test_teachers_that_cannot_teach_are_refused_naming_the_problem(teacher_dir, tmp_path):
    upper_teacher = tmp_path / "upper_teacher"
    upper_teacher.mkdir()
    wd.save_config(tiny("upper"), upper_teacher)
    build_net(tiny("upper"), JointSubset.parse("upper")).save(upper_teacher / wd.BEST_MODEL)
    with pytest.raises(TeacherError, match="right_ankle"):
        Teacher(upper_teacher, JointSubset.parse("all"), 64, 16)
    with pytest.raises(TeacherError, match="same crops"):
        Teacher(teacher_dir, JointSubset.parse("all"), 128, 32)
    with pytest.raises(TeacherError, match="does not exist"):
        Teacher(tmp_path / "nowhere", JointSubset.parse("all"), 64, 16)


def distill_config(teacher, init_student, joints="all", stacks=2):
    config = tiny(joints, stacks=stacks)
    config.train.trainer = "distill"
    add_section(config, "distill", dict(teacher=str(teacher), alpha=0.5, kd_on_all_joints=False,
                                        init_student=str(init_student)))
    return config


@pytest.mark.slow
def test_init_student_takes_every_weight_from_the_files_weights_alone_and_refuses_another_network(
        teacher_dir, tmp_path):
    expected = weights_by_name(load_trained(teacher_dir).net)
    marker = tmp_path / "code_ran"
    exported = foreign_savedmodel(tmp_path / "sm", marker, expected, JointSubset.parse("all").names, sigma=2.0)
    for k, init in enumerate((exported, teacher_dir)):
        keras.utils.set_random_seed(5)
        student = build_net(tiny("all"), JointSubset.parse("all"))
        if k == 0:   # through the config, once
            make_trainer(distill_config(teacher_dir, init), student, CODEC, xla=False)
        else:
            _init_from(student, str(init), JointSubset.parse("all"))
        got = weights_by_name(student)
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            np.testing.assert_array_equal(got[name], value, err_msg=f"{init}: {name}")
    assert not marker.exists(), "distill.init_student loaded (and ran) the SavedModel's graph"
    one_stack = build_net(tiny("all", stacks=1), JointSubset.parse("all"))
    with pytest.raises(ValueError, match=r"init_student .*sm: not the student's network \(\d+ weights the network "
                                         r"has no place for \(head1/bias"):
        _init_from(one_stack, str(exported), JointSubset.parse("all"))
    with pytest.raises(ValueError, match="its heads predict right_ankle,.*,left_wrist, the student's upper"):
        _init_from(one_stack, str(exported), JointSubset.parse("upper"))     # refused before any weight is copied
    assert not marker.exists()


@pytest.mark.slow
def test_training_steps_change_the_student_never_the_teacher(teacher_dir):
    config = tiny("upper", stacks=1)
    config.train.trainer = "distill"
    add_section(config, "distill", dict(teacher=str(teacher_dir), alpha=0.5, kd_on_all_joints=False, init_student=""))
    student = build_hourglass(1, 16, len(JointSubset.parse("upper")), depth=2, input_size=64)
    trainer = make_trainer(config, student, CODEC, xla=False)
    teacher_before = [np.array(v.numpy()) for v in trainer.teacher.variables]
    student_before = [np.array(v.numpy()) for v in student.trainable_weights]
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 64, 64, 3)).astype(np.uint8)
    n = len(JointSubset.parse("upper"))
    targets = {"joints": rng.uniform(8, 56, (4, n, 2)).astype(np.float32), "weights": np.ones((4, n), np.float32)}
    history = trainer.fit(tf.data.Dataset.from_tensors((images, targets)).repeat(3), epochs=1, verbose=0, shuffle=False)
    assert {"loss", "loss_gt", "loss_kd", "loss_kd_stack1"} <= set(history.history)
    for before, v in zip(teacher_before, trainer.teacher.variables):
        np.testing.assert_array_equal(before, v.numpy())  # weights and BN moving statistics alike
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(student_before, student.trainable_weights))


@pytest.mark.slow
def test_dry_run_reports_both_networks_of_the_published_pair():
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run([sys.executable, "-m", "kpt_tf.distill", "--config", "configs/fpd_hg8_to_4x128.py",
                           "--dry_run"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    line = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    assert (line["params"], line["teacher_params"]) == (3_287_936, 25_594_624)
    assert line["alpha"] == 0.5 and line["teacher_flops_per_image"] > 7 * line["flops_per_image"]
    assert line["loss"] == "fpd"


@pytest.mark.slow
def test_a_distilled_student_is_an_ordinary_workdir(trained_workdir, embedded_records, tmp_path):
    from kpt_tf.export import export_workdir
    from kpt_tf.training import loop
    from tests.conftest import tiny_train_config

    config = tiny_train_config(embedded_records, joints="upper", epochs=1, steps=3, stacks=1)
    config.train.trainer = "distill"
    add_section(config, "distill",
                dict(teacher=str(trained_workdir), alpha=0.5, kd_on_all_joints=False, init_student=""))
    summary = loop.train(config, tmp_path / "student", verbose=0)
    assert summary["trainer"] == "distill" and len(summary["history"]) == 1
    student = load_trained(tmp_path / "student")
    assert student.joints.names == JointSubset.parse("upper").names
    served = load_trained(export_workdir(tmp_path / "student", tmp_path / "student_sm"))
    crops = np.zeros((1, 64, 64, 3), np.float32)
    assert served.heatmaps_fn()(crops).shape == (1, 16, 16, len(JointSubset.parse("upper")))


def test_distill_loss_selects_a_registered_loss_and_an_unknown_one_is_refused_listing_the_known(teacher_dir):
    config = tiny("upper", stacks=1)
    config.train.trainer = "distill"
    add_section(config, "distill", dict(teacher=str(teacher_dir)))      # every other key: its declared default
    n = len(JointSubset.parse("upper"))
    student = build_hourglass(1, 16, n, depth=2, input_size=64)
    trainer = make_trainer(config, student, CODEC, xla=False)
    assert (config.distill.loss, config.distill.alpha, trainer.alpha) == ("fpd", 0.5, 0.5)
    assert trainer.stage_losses is fpd_stage_losses
    config.distill.loss = "test_teacher_only"
    trainer = make_trainer(config, student, CODEC, xla=False)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (2, 64, 64, 3)), tf.float32)
    joints, weights = rng.uniform(8, 56, (2, n, 2)).astype(np.float32), np.ones((2, n), np.float32)
    losses = trainer.compute_losses(images, trainer(images), joints, weights)
    assert float(losses["loss_gt"]) == 0.0 and float(losses["loss"]) == float(losses["loss_kd"]) > 0
    config.distill.loss = "mse"
    with pytest.raises(ValueError, match="config distill.loss 'mse': unknown distillation loss; known: fpd, "
                                         "test_teacher_only"):
        make_trainer(config, student, CODEC, xla=False)


def test_foreground_weight_weights_each_term_by_its_own_target():
    rng = np.random.default_rng(1)
    s, gt, t = (tf.constant(rng.uniform(0, 1, (2, 4, 4, 3)), tf.float32) for _ in range(3))
    w = tf.ones((2, 3))
    (g, k, _), = fpd_stage_losses([s], gt, w, t, 0.5, foreground_weight=10.0)
    assert float(g) == pytest.approx(float(np.mean((s - gt).numpy() ** 2 * (1 + 10 * gt.numpy()))), rel=1e-5)
    assert float(k) == pytest.approx(float(np.mean((s - t).numpy() ** 2 * (1 + 10 * t.numpy()))), rel=1e-5)

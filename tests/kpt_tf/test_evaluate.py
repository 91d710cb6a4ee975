"""The `python -m kpt_tf.evaluate` CLI and evaluate_files (the MPII files themselves: tests/mpii)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from kpt_tf import mpii
from kpt_tf.evaluate import evaluate_files
from kpt_tf.joints import JOINT_NAMES
from tests.conftest import REPO
from tests.kpt_tf.mpii.test_evaluation_files import N, write_gt
from tests.kpt_tf.mpii.test_submission import RELEASE_IMAGES, release_test_people, write_release_with_test_people

# --- evaluate_files and the CLI ------------------------------------------------------------------

def test_evaluate_files_perfect_predictions(tmp_path):
    pos0, _, _ = write_gt(tmp_path / "gt.mat")
    mpii.save_predictions_mat(tmp_path / "p.mat", pos0)
    result = evaluate_files(tmp_path / "gt.mat", tmp_path / "p.mat")
    assert result["hrnet"]["Mean"] == 100.0 and result["official"]["AUC"] == 100.0
    assert result["curve"] == [100.0] * 51


def _run_cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "kpt_tf.evaluate", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_writes_json_with_the_agreed_keys(tmp_path):
    pos0, _, _ = write_gt(tmp_path / "gt.mat")
    # People 0, 2, 4 off by (1, 1) px (right), people 1, 3 by (30, 30) px (wrong; head size 34 px).
    preds0 = pos0 + np.where(np.arange(N)[:, None, None] % 2 == 0, 1.0, 30.0)
    mpii.save_predictions_mat(tmp_path / "p.mat", preds0)
    out = tmp_path / "out" / "pckh.json"
    run = _run_cli("--gt", str(tmp_path / "gt.mat"), "--preds", str(tmp_path / "p.mat"), "--json", str(out))
    assert run.returncode == 0, run.stderr
    assert "HRNet/mmpose" in run.stdout and "official MPII toolkit" in run.stdout
    result = json.loads(out.read_text())
    groups = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"]
    assert list(result) == ["hrnet", "bearpaw", "official", "per_joint", "curve"]
    assert list(result["hrnet"]) == groups + ["Mean", "Mean@0.1"]
    assert list(result["bearpaw"]) == groups + ["Mean", "Mean@0.1"]
    assert list(result["official"]) == groups + ["UBody", "Total", "AUC"]
    assert list(result["per_joint"]) == list(JOINT_NAMES)
    assert len(result["curve"]) == 51
    # 14 scored joints x 5 people, less person 0's missing right ankle: 41 of 69 right.
    assert result["hrnet"]["Mean"] == pytest.approx(100 * 41 / 69)


def test_cli_bad_file_exits_2_without_traceback(tmp_path):
    write_gt(tmp_path / "gt.mat")
    scipy.io.savemat(tmp_path / "p.mat", {"preds": np.ones((N + 1, 16, 2))})
    run = _run_cli("--gt", str(tmp_path / "gt.mat"), "--preds", str(tmp_path / "p.mat"))
    assert run.returncode == 2
    assert "p.mat" in run.stderr and "6 people but the ground truth has 5" in run.stderr
    assert "Traceback" not in run.stderr
    run = _run_cli("--gt", str(tmp_path / "gt.mat"))
    assert run.returncode == 2 and "--preds" in run.stderr and "Traceback" not in run.stderr


# --- MPII's test split and the test-server submission ---------------------------------------------

def _tiny_model(root):
    from kpt_tf import workdir as wd
    from kpt_tf.joints import JointSubset
    from kpt_tf.models import build_net
    from tests.kpt_tf.test_transfer import tiny_config

    model = root / "model"
    model.mkdir()
    config = tiny_config("all")
    build_net(config, JointSubset.parse("all")).save(model / wd.BEST_MODEL)
    wd.save_config(config, model)
    return model


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    """A generated release .mat with test people, its images, its records (train + test), the same test people
    (and one more rectangle) as HRNet's test.json in another order and their records, and an untrained model."""
    from data_prep import mpii_to_tfrecord as conv

    root = tmp_path_factory.mktemp("test_split")
    release = write_release_with_test_people(root / "mpii_human_pose_v1_u12_1.mat", root / "images")
    shards = {"train": 1, "val": 1, "test": 2}
    manifest = conv.convert(release, root / "images", root / "records", num_shards=shards, crop_size=64,
                            progress=False)
    assert manifest["splits"]["test"] == {"read": 4, "written": 4, "skipped": 0, "num_shards": 2}
    hrnet = [{"image": name, "center": list(rects[r][0]), "scale": rects[r][1]}
             for name, is_train, rects, _ in RELEASE_IMAGES if not is_train
             for r in range(len(rects or [])) if rects[r][0] is not None][::-1]
    (root / "test.json").write_text(json.dumps(hrnet))
    conv.convert(root / "test.json", root / "images", root / "hrnet_records", num_shards={"test": 2},
                 crop_size=64, progress=False)
    return {"root": root, "release": release, "records": root / "records", "hrnet": hrnet,
            "hrnet_records": root / "hrnet_records", "model": _tiny_model(root)}


def _points_by_rectangle(path, release_path):
    """{(annolist index, annorect index): 1-based (16, 2) points ordered by id}, read with scipy alone."""
    release = scipy.io.loadmat(str(release_path), struct_as_record=True)["RELEASE"]
    test_images = np.flatnonzero(release["img_train"][0, 0].reshape(-1) == 0)
    pred = scipy.io.loadmat(str(path), struct_as_record=True)["pred"]
    assert pred.shape == (1, len(test_images))
    out = {}
    for k, image_index in enumerate(test_images):
        rects = pred["annorect"][0, k]
        if rects.size == 0 or "annopoints" not in rects.dtype.names:
            continue
        for r in range(rects.shape[1]):
            points = rects["annopoints"][0, r]
            if points.size == 0:
                continue
            point = points["point"][0, 0]
            xy = np.zeros((16, 2))
            for j in range(point.shape[1]):
                xy[int(point["id"][0, j][0, 0])] = point["x"][0, j][0, 0], point["y"][0, j][0, 0]
            assert sorted(int(point["id"][0, j][0, 0]) for j in range(point.shape[1])) == list(range(16))
            out[(int(image_index), r)] = xy
    return out


def test_test_split_submission_holds_every_evaluated_prediction_in_release_order(test_split, tmp_path):
    from kpt_tf.evaluate import evaluate_model
    from kpt_tf.mpii import submission as sub

    out = tmp_path / "pred_keypoints_mpii.mat"
    result = evaluate_model(test_split["model"], test_split["records"], "test", submission=out,
                            out_mat=tmp_path / "preds.mat")
    assert result["no_ground_truth"] and result["report"] == {"people": 4, "submission": str(out)}
    preds = result["predictions"]
    people = release_test_people()               # dataset_index k -> the k-th single-person test rectangle
    predicted = {(people[i][1], people[i][2]): preds.joints[n] for n, i in enumerate(preds.dataset_index)}
    assert sorted(preds.dataset_index) == [0, 1, 2, 3] and len(predicted) == 4
    assert all(np.isfinite(v).all() for v in predicted.values())

    by_scipy = _points_by_rectangle(out, test_split["release"])
    assert set(by_scipy) == set(predicted)       # none lost, none added
    for key, joints in predicted.items():
        np.testing.assert_allclose(by_scipy[key], joints + 1.0, rtol=0, atol=1e-9)
    count, submitted = sub.read_submission(out)  # the project's reader: release order, 0-based
    test_images = [i for i, (_, is_train, _, _) in enumerate(RELEASE_IMAGES) if not is_train]
    assert count == len(test_images)
    assert [(test_images[p.test_position], p.person_index) for p in submitted] == [(p[1], p[2]) for p in people]
    for p in submitted:
        np.testing.assert_allclose(p.joints, predicted[(test_images[p.test_position], p.person_index)], atol=1e-9)
    # --out_mat of the same run lists the same predictions in the records' order
    np.testing.assert_allclose(mpii.load_predictions(tmp_path / "preds.mat"), preds.joints[np.argsort(
        preds.dataset_index)], atol=1e-9)


def test_hrnet_test_json_people_find_their_release_rectangles(test_split, tmp_path):
    from kpt_tf.evaluate import evaluate_model

    out = tmp_path / "hrnet_submission.mat"
    with pytest.raises(ValueError, match="give it with --release"):
        evaluate_model(test_split["model"], test_split["hrnet_records"], "test", submission=out)
    result = evaluate_model(test_split["model"], test_split["hrnet_records"], "test", submission=out,
                            release=test_split["release"])
    preds = result["predictions"]
    images = [r[0] for r in RELEASE_IMAGES]
    by_scipy = _points_by_rectangle(out, test_split["release"])
    assert len(by_scipy) == len(test_split["hrnet"]) == 5      # the 4 single people and test_a's third rectangle
    for n, i in enumerate(preds.dataset_index):
        person = test_split["hrnet"][i]
        image_index = images.index(person["image"])
        rects = RELEASE_IMAGES[image_index][2]
        r = [tuple(rect[0]) if rect[0] else None for rect in rects].index(tuple(person["center"]))
        np.testing.assert_allclose(by_scipy[(image_index, r)], preds.joints[n] + 1.0, atol=1e-9)


def test_a_submission_missing_a_test_person_is_refused_before_the_model_runs(test_split, tmp_path):
    from data_prep import mpii_to_tfrecord as conv
    from kpt_tf.evaluate import evaluate_model

    images = tmp_path / "images"
    images.mkdir()
    for image in (test_split["root"] / "images").iterdir():
        if image.name != "test_d.jpg":
            (images / image.name).write_bytes(image.read_bytes())
    conv.convert(test_split["release"], images, tmp_path / "records", crop_size=64, progress=False)
    out = tmp_path / "pred_keypoints_mpii.mat"
    out.write_bytes(b"an earlier submission")
    with pytest.raises(ValueError, match=r"1 of the 4 single-person test people .* test_d.jpg annorect\(1\).*"
                                         r"the converter skipped 1 \(image file missing\)"):
        evaluate_model(tmp_path / "no_model_needed", tmp_path / "records", "test", submission=out)
    assert out.read_bytes() == b"an earlier submission"


@pytest.mark.slow
def test_cli_writes_the_submission_and_refuses_it_off_the_test_split(test_split, tmp_path):
    out = tmp_path / "pred_keypoints_mpii.mat"
    args = ["--model", str(test_split["model"]), "--data", str(test_split["records"])]
    run = _run_cli(*args, "--split", "test", "--submission", str(out))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "nothing is scored" in run.stdout
    assert f"wrote {out}: MPII test-server submission (4 test people" in run.stdout
    assert len(_points_by_rectangle(out, test_split["release"])) == 4
    run = _run_cli(*args, "--split", "val", "--submission", str(tmp_path / "x.mat"))
    assert run.returncode == 2 and "--submission is for the test split" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "x.mat").exists()

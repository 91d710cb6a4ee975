"""The procedural MPII-format data set (the data_prep.synth package)."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from data_prep.synth import figure, from_annotations, painting, scene
from data_prep.synth.generate import generate
from kpt_tf.joints import MPII_SHORT_NAMES
from tests.conftest import REPO, SHARED_MPII, require_shared_mpii

REAL_ANNOTATIONS = SHARED_MPII / "mpii_annotations.json.gz"
REAL_GT = SHARED_MPII / "detections_our_format.mat"


def _need_shared(path: Path):
    require_shared_mpii()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _first_real_records(count: int) -> list[dict]:
    """The first records of the real file, decoded one by one from its beginning (no full load)."""
    with gzip.open(REAL_ANNOTATIONS, "rt") as f:
        text = f.read(4000 * count)
    decoder, records, pos = json.JSONDecoder(), [], 1
    while len(records) < count:
        record, pos = decoder.raw_decode(text, pos)
        records.append(record)
        pos += 1                      # the comma between records
    return records


def _annotated(record) -> np.ndarray:
    js = np.asarray(record["joint_self"], np.float64)
    return ~((js[:, 0] == 0) & (js[:, 1] == 0))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = generate(out, num_train=30, num_val=10, seed=7, num_workers=1)
    records = json.loads((out / "annotations.json").read_text())
    return out, summary, records


def test_counts_images_and_people_fields(small_set):
    out, summary, records = small_set
    assert summary["people"] == len(records) == 40
    assert [r["isValidation"] for r in records] == [0.0] * 30 + [1.0] * 10   # train first, then val
    by_image: dict[str, list[dict]] = {}
    for r in records:
        by_image.setdefault(r["img_paths"], []).append(r)
    assert summary["images"] == len(by_image)
    assert all(1 <= len(group) <= 3 for group in by_image.values())
    for name, group in by_image.items():
        assert re.fullmatch(r"synth_\d{6}\.jpg", name)
        image = cv2.imread(str(out / "images" / name))
        assert image.shape[:2] == (group[0]["img_height"], group[0]["img_width"])
        assert 480 <= image.shape[1] <= 1280
        assert [r["people_index"] for r in group] == [float(i + 1) for i in range(len(group))]
        for r in group:
            assert r["numOtherPeople"] == len(group) - 1
            others = r["joint_others"]
            if len(group) == 1:
                assert others == {"_ArrayType_": "double", "_ArraySize_": [0, 0], "_ArrayData_": None}
            elif len(group) == 2:
                other = next(o for o in group if o is not r)
                assert others == other["joint_self"] and r["objpos_other"] == other["objpos"]
            else:
                assert len(others) == len(r["scale_provided_other"]) == len(group) - 1


def test_schema_and_number_format_match_the_real_file(small_set):
    _need_shared(REAL_ANNOTATIONS)
    out, _, records = small_set
    real_first = _first_real_records(1)[0]
    for r in records:
        assert list(r) == list(real_first) + ["headbox"]
        assert np.asarray(r["headbox"]).shape == (2, 2)
    text = (out / "annotations.json").read_text()
    assert text.startswith('[{"dataset": ') and '"isValidation": 0.000,' in text
    numbers = re.findall(r"(?<![\w.])-?\d+(?:\.\d+)?", re.sub(r'"[^"]*"', '""', text))
    assert numbers and all(re.fullmatch(r"-?\d+\.\d{3}", n) for n in numbers if n != "0")


def test_same_seed_same_bytes_any_worker_count(tmp_path):
    a = generate(tmp_path / "a", num_train=5, num_val=3, seed=11, num_workers=1)
    generate(tmp_path / "b", num_train=5, num_val=3, seed=11, num_workers=2)
    generate(tmp_path / "c", num_train=5, num_val=3, seed=12, num_workers=1)
    files_a, files_b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len([n for n in files_a if n.endswith(".jpg")]) == a["images"]
    assert files_a == files_b
    assert files_a["annotations.json"] != _files(tmp_path / "c")["annotations.json"]


def test_figures_are_drawn_at_their_visible_joints():
    rng = np.random.default_rng(3)
    differs, total = 0, 0
    for _ in range(6):
        _, people, background, drawn = scene.render_synthetic_image(rng, 2, return_layers=True)
        diff = np.abs(drawn.astype(np.int16) - background.astype(np.int16)).max(-1)
        for p in people:
            for x, y in np.round(p["joints"][p["visible"]]).astype(int):
                total += 1
                differs += diff[max(0, y - 2):y + 3, max(0, x - 2):x + 3].mean() > 10
    assert total > 100
    assert differs / total > 0.9          # a figure's colour may rarely match the background's


def test_truncated_joints_are_not_annotated(small_set):
    _, _, records = small_set
    missing = 0
    for r in records:
        js = np.asarray(r["joint_self"], np.float64)
        annotated = _annotated(r)
        missing += (~annotated).sum()
        assert (js[~annotated] == 0).all()                       # [0, 0, 0] like MPII
        xy = js[annotated, :2]
        assert (xy >= 1).all() and (xy[:, 0] <= r["img_width"]).all() and (xy[:, 1] <= r["img_height"]).all()
        assert set(js[annotated, 2]) <= {0.0, 1.0}
    assert missing > 0
    # The true positions decide: annotated exactly when inside the image.
    rng = np.random.default_rng(0)
    outside_seen = 0
    for _ in range(8):
        image, people = scene.render_synthetic_image(rng, 2)
        h, w = image.shape[:2]
        for p in people:
            inside = ((p["joints"] >= 0) & (p["joints"] <= [w - 1, h - 1])).all(1)
            assert (p["annotated"] == inside).all()
            assert not (p["visible"] & ~p["annotated"]).any()
            outside_seen += (~inside).sum()
    assert outside_seen > 0


def test_visibility_is_decided_by_the_topmost_shape():
    joints = np.zeros((16, 2))
    joints[figure.R_WRI] = [50, 50]
    joints[figure.R_ELB] = [20, 50]
    forearm = painting.Part(painting.capsule(joints[figure.R_ELB], joints[figure.R_WRI], 6, 5), (0, 0, 0), 0.0,
                         frozenset((figure.R_ELB, figure.R_WRI)), person=0)
    box = painting.Part(np.array([[40, 40], [60, 40], [60, 60], [40, 60]], float), (0, 0, 0), 0.0)
    annotated = np.zeros(16, bool)
    annotated[[figure.R_WRI, figure.R_ELB]] = True
    visible = scene.visibility([forearm, box], 0, joints, annotated)
    assert not visible[figure.R_WRI] and visible[figure.R_ELB]
    assert scene.visibility([box, forearm], 0, joints, annotated)[figure.R_WRI]


def test_gt_val_mat_matches_val_records(small_set):
    out, _, records = small_set
    val = [r for r in records if r["isValidation"] == 1.0]
    gt = scipy.io.loadmat(out / "gt_val.mat")
    n = len(val)
    assert gt["pos_gt_src"].shape == (16, 2, n) and gt["jnt_missing"].shape == (16, n)
    assert gt["headboxes_src"].shape == (2, 2, n) and gt["jnt_missing"].dtype == np.uint8
    assert [str(c[0]) for c in gt["dataset_joints"][0]] == list(MPII_SHORT_NAMES)
    for i, r in enumerate(val):
        js = np.asarray(r["joint_self"])
        np.testing.assert_allclose(gt["pos_gt_src"][:, :, i], js[:, :2])
        np.testing.assert_array_equal(gt["jnt_missing"][:, i], (~_annotated(r)).astype(np.uint8))
        np.testing.assert_allclose(gt["headboxes_src"][:, :, i], r["headbox"])


def test_centre_scale_and_head_box_follow_mpii_semantics(small_set):
    _, _, records = small_set
    inside, total = 0, 0
    for r in records:
        js = np.asarray(r["joint_self"], np.float64)
        annotated = _annotated(r)
        # The standard crop (CONVENTIONS.md): c_y += 15 s, s *= 1.25, a square of 200 s.
        centre = np.asarray(r["objpos"], np.float64) + [0.0, 15 * r["scale_provided"]]
        half = 100 * 1.25 * r["scale_provided"]
        inside += (np.abs(js[annotated, :2] - centre).max(1) <= half).sum()
        total += annotated.sum()
        box = np.asarray(r["headbox"])
        if annotated[figure.NECK] and annotated[figure.HEAD_TOP]:
            segment = np.linalg.norm(js[figure.HEAD_TOP, :2] - js[figure.NECK, :2])
            assert np.linalg.norm(box[1] - box[0]) == pytest.approx(1.25 * segment, rel=1e-3, abs=2e-3)
            # MPII's scale: 200 s = 6 head segments (our segment is foreshortened by head pitch).
            assert 0.6 < segment * 6 / (200 * r["scale_provided"]) < 1.15
    assert inside / total > 0.97


def test_from_annotations_on_the_real_file(tmp_path):
    _need_shared(REAL_ANNOTATIONS)
    summary = from_annotations.render_from_annotations(REAL_ANNOTATIONS, tmp_path, max_people=20, num_workers=1)
    real = _first_real_records(20)
    records = json.loads((tmp_path / "annotations.json").read_text())
    assert summary["people"] == len(records) == 20
    assert [{k: v for k, v in r.items() if k != "headbox"} for r in records] == real
    assert sum(r["isValidation"] for r in records) == sum(r["isValidation"] for r in real) == summary["val"]
    names = {r["img_paths"] for r in real}
    assert {p.name for p in (tmp_path / "images").iterdir()} == names
    for r in real:
        image = cv2.imread(str(tmp_path / "images" / r["img_paths"]))
        assert image.shape[:2] == (r["img_height"], r["img_width"])
    gt = scipy.io.loadmat(tmp_path / "gt_val.mat")
    assert gt["pos_gt_src"].shape == (16, 2, summary["val"])
    if REAL_GT.exists():
        # The first val people of the file are the first columns of the official ground truth.
        real_boxes = scipy.io.loadmat(REAL_GT)["headboxes_src"][:, :, :summary["val"]]
        ours = gt["headboxes_src"]
        diag = lambda b: np.linalg.norm(b[1] - b[0], axis=0)
        np.testing.assert_allclose(diag(ours), diag(real_boxes), rtol=0.01)
        np.testing.assert_allclose(ours.mean(0), real_boxes.mean(0), atol=2.0)


def test_infer_missing_joints_extends_the_limbs():
    template = from_annotations.TEMPLATE_2D * 300 + [400, 300]
    annotated = np.ones(16, bool)
    annotated[[figure.R_ANK, figure.L_ANK, figure.L_KNE]] = False
    inferred = from_annotations.infer_missing_joints(np.where(annotated[:, None], template, 0), annotated, 300,
                                                     [400, 280])
    np.testing.assert_allclose(inferred[annotated], template[annotated])
    np.testing.assert_allclose(inferred[~annotated], template[~annotated], atol=3.0)


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="num_train"):
        generate(tmp_path, num_train=-1, num_val=2)
    with pytest.raises(ValueError, match="at least 1"):
        generate(tmp_path, num_train=0, num_val=0)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        from_annotations.render_from_annotations(tmp_path / "nope.json", tmp_path / "out")
    broken = tmp_path / "broken.json"
    broken.write_text('[{"img_paths": "a.jpg"}]')
    with pytest.raises(ValueError, match="record 0 lacks"):
        from_annotations.render_from_annotations(broken, tmp_path / "out")
    with pytest.raises(ValueError, match="max_people"):
        from_annotations.render_from_annotations(broken, tmp_path / "out", max_people=0)
    result = subprocess.run([sys.executable, "-m", "data_prep.synth", "--output_dir", str(tmp_path / "cli"),
                             "--num_train", "-3"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "num_train must be an integer >= 0" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr

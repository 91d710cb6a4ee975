"""The procedural MPII-format data set (the data_prep.synth package)."""

from __future__ import annotations

import gzip
import hashlib
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
from kpt_tf.layouts import layout
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


# ----------------------------------------------------------------------------------------------
# The same people in COCO's person-keypoints format (issue 35, item 4)
# ----------------------------------------------------------------------------------------------
# sha256 of a small generation's MPII files, computed with the generator as it was before it wrote COCO files
# (OpenCV 4.14.0's JPEG encoder: another OpenCV may encode the images differently).
MPII_FILES_BEFORE_COCO = {
    'annotations.json': '1fa2053788da646ac16964f12c5b9a96ffa0bb9c0076375091f04e2b8969cd8c',
    'gt_val.mat': '6186ae6784b7701025c1a72dcd28bb730a65984902d8ae88bb246e84f72a98d6',
    'images/synth_000000.jpg': 'c80db5b98862f31f3378e9d280d750bbffb32635752ce455f254565aea5392ba',
    'images/synth_000001.jpg': 'dc21d172081d8912fcde984374da2baa9e8946ac274ce9b5dae8789ae89acd0c',
    'images/synth_000002.jpg': 'f3e121c44c158a213d01260bf150c2ba35b9ecc65e88f417b8ffc60254bd38dc',
    'images/synth_000003.jpg': '43ff4b84641a689ba6c8c568f55eae65ea4dc455cff0da1e4fbb0b6890e70f81',
    'images/synth_000004.jpg': 'b6b075f1990a90055da98e2b353425da392e70ee9cf97d50286a1adc1df0a35d',
    'images/synth_000005.jpg': '2febd0668955884f739638682fccededcd0dba7597b9094c39ba2bd2769df123',
    'images/synth_000006.jpg': '76a556a73651d4b1d1c63984bea4fd45d7589d26856072dc680dee0ca1bfa6f0',
    'images/synth_000007.jpg': '55edb45bbfe51b64f262a88edb0e30559e15c7004d5f4dc4e489b570e301a592',
    'images/synth_000008.jpg': '5260d9e7242e7bd1b05193c67c6c950d67cb9aec2cbd89f7b9e4b7da5b5321f3',
    'images/synth_000009.jpg': 'b156cccaba785e9e13636d71a4292e2c4d5907b313d801cb98588e7a92052805',
}
COCO = layout("coco17")
MPII = layout("mpii16")
FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")


def _coco_file(out: Path, split: str) -> dict:
    return json.loads((out / f"person_keypoints_{split}.json").read_text())


def _keypoints(annotation: dict) -> np.ndarray:
    return np.asarray(annotation["keypoints"], np.float64).reshape(len(COCO.joints), 3)


def test_the_mpii_files_are_byte_identical_to_those_of_before_the_coco_output(tmp_path):
    generate(tmp_path, num_train=10, num_val=5, seed=23, num_workers=1)
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in _files(tmp_path).items()
              if not name.startswith("person_keypoints_")}
    assert hashes == MPII_FILES_BEFORE_COCO, f"MPII output changed (OpenCV {cv2.__version__})"
    assert sorted(set(_files(tmp_path)) - set(hashes)) == ["person_keypoints_train.json", "person_keypoints_val.json"]


def test_coco_files_load_in_pycocotools_and_hold_the_mpii_people(small_set):
    from pycocotools.coco import COCO as CocoApi

    out, _, records = small_set
    person_id = 0
    for split, is_val in (("train", 0.0), ("val", 1.0)):
        content = _coco_file(out, split)
        api = CocoApi()
        api.dataset = content
        api.createIndex()
        (category,) = api.loadCats(api.getCatIds())
        assert category["name"] == "person" and category["keypoints"] == list(COCO.joints)
        assert category["skeleton"] == [[COCO.index(a) + 1, COCO.index(b) + 1] for a, b in COCO.skeleton]
        mpii = [r for r in records if r["isValidation"] == is_val]
        assert [(i["id"], i["file_name"], i["width"], i["height"]) for i in api.loadImgs(api.getImgIds())] == list(
            {r["annolist_index"]: (int(r["annolist_index"]), r["img_paths"], int(r["img_width"]),
                                   int(r["img_height"])) for r in mpii}.values())
        annotations = api.loadAnns(api.getAnnIds())
        assert len(annotations) == len(mpii)
        for annotation, record in zip(annotations, mpii):
            person_id += 1
            assert annotation["id"] == person_id and annotation["image_id"] == record["annolist_index"]
            assert annotation["category_id"] == 1 and annotation["iscrowd"] == 0
            _check_person(annotation, record)


def _check_person(annotation: dict, record: dict):
    """Limb joints are MPII's (same pixels, flags mapped), face points labelled inside the image, bbox holds all."""
    points = _keypoints(annotation)
    rows = np.asarray(record["joint_self"], np.float64)
    for name in COCO.joints:
        x, y, v = points[COCO.index(name)]
        if name in FACE:            # labelled exactly when inside the image; not labelled: [0, 0, 0]
            inside = 0 <= x <= record["img_width"] - 1 and 0 <= y <= record["img_height"] - 1
            assert inside if v > 0 else (x, y, v) == (0, 0, 0)
            continue
        mx, my, seen = rows[MPII.index(name)]
        if mx == my == 0:                                   # MPII: not annotated
            assert (x, y, v) == (0, 0, 0)
        else:
            assert (x, y) == (round(mx - 1, 3), round(my - 1, 3))      # 0-based: the same pixel
            assert v == (2 if seen else 1)
    labelled = points[points[:, 2] > 0]
    assert annotation["num_keypoints"] == len(labelled)
    bx, by, bw, bh = annotation["bbox"]
    assert bw > 0 and bh > 0 and bx >= 0 and by >= 0
    assert bx + bw <= record["img_width"] and by + bh <= record["img_height"]
    assert ((labelled[:, 0] >= bx - 1e-3) & (labelled[:, 0] <= bx + bw + 1e-3)).all()
    assert ((labelled[:, 1] >= by - 1e-3) & (labelled[:, 1] <= by + bh + 1e-3)).all()
    assert 0.1 * bw * bh < annotation["area"] <= (bw + 2) * (bh + 2)     # a silhouette, not its box


def test_coco_visibility_flags_are_used_and_the_face_is_mostly_labelled(small_set):
    out, _, _ = small_set
    points = np.concatenate([_keypoints(a) for s in ("train", "val") for a in _coco_file(out, s)["annotations"]])
    face = points.reshape(-1, 17, 3)[:, :5, 2]
    assert {0.0, 1.0, 2.0} <= set(points[:, 2]) and (face == 2).any() and (face == 1).any()


def test_the_ground_truth_fed_back_as_predictions_scores_ap_1(small_set, tmp_path):
    from kpt_tf.metrics.coco import evaluate_coco_files

    out, _, _ = small_set
    for split in ("train", "val"):
        annotations = _coco_file(out, split)["annotations"]
        predictions = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
                       for a in annotations]
        (tmp_path / f"{split}.json").write_text(json.dumps(predictions))
        result = evaluate_coco_files(out / f"person_keypoints_{split}.json", tmp_path / f"{split}.json")
        assert result["AP"] == pytest.approx(1.0) and result["AR"] == pytest.approx(1.0)
        assert result["people"] == sum(1 for a in annotations if a["num_keypoints"] > 0) > 0


# A head painted alone, in colours no other feature has, to read back which pixel a face keypoint lands on.
HEAD_PALETTE = dict(hair=(0, 0, 200), skin=(200, 200, 200), eyes=(0, 250, 0), nose=(250, 0, 0), mouth=(0, 0, 0),
                    hat=None)


def _painted_head(rng, yaw=None):
    """A random figure's head (pose, view; `yaw` fixes the body's and zeroes the head's own turn) at (300, 300)."""
    body, pose = figure.sample_body(rng), figure.sample_pose(rng)
    view = figure.sample_view(rng, 400.0)
    if yaw is not None:
        view.yaw, view.roll = yaw, 0.0
        pose.update(head_yaw=0.0, head_pitch=0.0, head_roll=0.0, lean=0.0, side_bend=0.0, twist=0.0)
    skel = figure.skeleton_3d(body, pose)
    view.pelvis = np.array([300.0, 300.0]) - view.image_matrix() @ skel.head_centre
    frame, radii = painting.head_geometry(body, skel, view)
    head = painting.head_part(frame, radii, HEAD_PALETTE, 0.0, 0)
    image = np.zeros((600, 600, 3), np.uint8)
    painting.draw_part(image, head, 1)
    points, shown = painting.face_keypoints(frame, radii)
    return head, image, points, shown


def test_nose_and_eyes_lie_on_their_painted_pixels_inside_the_head_box():
    rng = np.random.default_rng(5)
    on_colour = {"nose": [], "eye": []}
    for _ in range(150):
        head, image, points, shown = _painted_head(rng)
        low, high = head.polygon.min(0), head.polygon.max(0)
        assert ((points[:3] >= low - 1) & (points[:3] <= high + 1)).all()       # nose, eyes: in the head's box
        for k, name in enumerate(FACE[:3]):
            if shown[k]:
                x, y = np.round(points[k]).astype(int)
                colour = HEAD_PALETTE["nose" if name == "nose" else "eyes"]
                on_colour["nose" if name == "nose" else "eye"].append(np.abs(image[y, x] - colour).max() < 60)
    assert len(on_colour["eye"]) > 100 and all(on_colour["eye"])
    assert len(on_colour["nose"]) > 100 and np.mean(on_colour["nose"]) > 0.97    # misses: anti-aliased edges


def test_a_face_turned_to_the_camera_is_seen_and_one_turned_away_is_not():
    rng = np.random.default_rng(8)
    for _ in range(10):
        _, _, _, towards = _painted_head(rng, yaw=0.0)
        _, _, _, away = _painted_head(rng, yaw=180.0)
        _, _, _, profile = _painted_head(rng, yaw=90.0)          # the person's right side faces the camera
        assert towards.all()
        assert not away[:3].any() and away[3:].all()           # nose and eyes hidden; ears at the sides
        assert profile[FACE.index("right_ear")] and not profile[FACE.index("left_ear")]
        assert profile[FACE.index("nose")] and not profile[FACE.index("left_eye")]


def test_face_keypoints_in_scenes_follow_facing_and_occlusion(monkeypatch):
    def rendered(yaw):
        sample_view, sample_pose = scene.sample_view, scene.sample_pose

        def view(rng, height_px):
            v = sample_view(rng, height_px)
            v.yaw, v.roll = yaw, 0.0
            return v

        def pose(rng):
            return {**sample_pose(rng), "head_yaw": 0.0, "head_pitch": 0.0, "head_roll": 0.0, "lean": 0.0}

        with monkeypatch.context() as patch:
            patch.setattr(scene, "sample_view", view)
            patch.setattr(scene, "sample_pose", pose)
            rng = np.random.default_rng(4)
            return [p for _ in range(6) for p in scene.render_synthetic_image(rng, 2)[1]]

    towards, away = rendered(0.0), rendered(180.0)
    nose_seen = [p["face_visible"][0] for p in towards if p["face_labelled"][0]]
    assert len(nose_seen) >= 8 and np.mean(nose_seen) > 0.8           # the rest: behind another figure or object
    assert sum(p["face_labelled"][:3].sum() for p in away) >= 20
    assert not any(p["face_visible"][:3].any() for p in away)


def test_face_points_are_hidden_only_by_shapes_drawn_after_the_head():
    head = painting.Part(np.array([[0, 0], [40, 0], [40, 40], [0, 40]], float), (0, 0, 0), 0.0,
                         painting.HEAD_JOINTS, person=0)
    board = painting.Part(np.array([[15, 15], [60, 15], [60, 60], [15, 60]], float), (0, 0, 0), 0.0)
    points = np.array([[20.0, 20.0], [5.0, 5.0]])
    labelled, shown = np.array([True, True]), np.array([True, True])
    after = scene.face_visibility(scene.drawn_shapes([head, board]), 0, points, labelled, shown)
    before = scene.face_visibility(scene.drawn_shapes([board, head]), 1, points, labelled, shown)
    assert after.tolist() == [False, True] and before.tolist() == [True, True]
    hidden = scene.face_visibility(scene.drawn_shapes([head]), 0, points, labelled, np.array([False, True]))
    assert hidden.tolist() == [False, True]

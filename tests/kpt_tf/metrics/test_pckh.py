"""PCKh metric: the published bearpaw-hg_s2_b1 table in three conventions, and hand-made edge cases."""


import numpy as np
import pytest

from kpt_tf import mpii
from kpt_tf.joints import JOINT_NAMES, JointSubset
from kpt_tf.metrics import pckh
from tests.conftest import SHARED_MPII as MPII_DIR
from tests.conftest import require_shared_mpii

GT_FILE = MPII_DIR / "detections_our_format.mat"
PREDS_DIR = MPII_DIR / "preds"
ROWS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")


def _require_mpii():
    require_shared_mpii()


@pytest.fixture(scope="module")
def truth():
    _require_mpii()
    return mpii.load_ground_truth(GT_FILE)


def _report(truth, name):
    preds = mpii.load_predictions(PREDS_DIR / name, expected_count=len(truth))
    counts = pckh.score(preds, truth.positions, truth.head_sizes, truth.annotated)
    return counts, pckh.report(counts)


# --- the published figure (../shared/mpii/README.md) -----------------------------------------------

def test_bearpaw_s2_table_every_cell(truth):
    _, result = _report(truth, "bearpaw-hg_s2_b1.mat")
    rows = dict(zip(ROWS, (95.80, 94.57, 88.12, 83.31, 86.24, 80.88, 77.44)))
    expected_hrnet = {**rows, "Mean": 87.30, "Mean@0.1": 23.91}
    expected_bearpaw = {**rows, "Mean": 86.76}
    expected_official = {"Head": 96.7, "Shoulder": 94.6, "Elbow": 88.1, "Wrist": 83.3, "Hip": 86.2,
                         "Knee": 80.9, "Ankle": 77.4, "Total": 87.3, "AUC": 57.4}
    for key, value in expected_hrnet.items():
        assert round(result["hrnet"][key], 2) == pytest.approx(value, abs=1e-9), key
    for key, value in expected_bearpaw.items():
        assert round(result["bearpaw"][key], 2) == pytest.approx(value, abs=1e-9), key
    # The toolkit prints %1.1f: compare at its rounding.
    for key, value in expected_official.items():
        assert round(result["official"][key], 1) == pytest.approx(value, abs=1e-9), key
    assert len(result["curve"]) == 51
    assert result["curve"][50] == pytest.approx(result["hrnet"]["Mean"])  # Total == weighted Mean
    assert result["curve"][10] == pytest.approx(result["hrnet"]["Mean@0.1"])
    assert list(result["per_joint"]) == list(JOINT_NAMES)


def test_other_reference_predictions_plausible(truth):
    # Published validation figures: 8-stack hourglass ~88.5-89.1, Newell's release ~88-91; s1 < s2 < s8.
    means = {name: _report(truth, name)[1]["hrnet"]["Mean"]
             for name in ("bearpaw-hg_s1_b1.mat", "bearpaw-hg_s8_b1.mat", "newell.h5", "tompson.h5")}
    assert 88.5 <= means["bearpaw-hg_s8_b1.mat"] <= 89.5
    assert 88.0 <= means["newell.h5"] <= 91.0
    assert 84.0 <= means["bearpaw-hg_s1_b1.mat"] < 87.30 < means["bearpaw-hg_s8_b1.mat"]
    assert 80.0 <= means["tompson.h5"] <= 84.0


# --- hand-made cases -------------------------------------------------------------------------------

def _people(errors_px, annotated=None):
    """gt at the origin, predictions displaced (3k, 4k) for a distance of 5k px; head size 10 px."""
    errors_px = np.asarray(errors_px, dtype=np.float64)
    gt = np.zeros(errors_px.shape + (2,))
    pred = np.stack([errors_px * 0.6, errors_px * 0.8], axis=-1)
    annotated = np.ones(errors_px.shape, bool) if annotated is None else np.asarray(annotated, bool)
    return pred, gt, np.full(errors_px.shape[0], 10.0), annotated


def test_threshold_boundary_inclusive_vs_exclusive():
    pred, gt, sizes, annotated = _people([[5.0], [4.99], [5.01]])  # errors 0.5, 0.499, 0.501
    errors = pckh.normalized_errors(pred, gt, sizes, annotated)
    np.testing.assert_allclose(errors[:, 0], [0.5, 0.499, 0.501])
    le = pckh.correct_fractions(errors, [0.5], inclusive=True)
    lt = pckh.correct_fractions(errors, [0.5], inclusive=False)
    assert le[0, 0] == pytest.approx(2 / 3) and lt[0, 0] == pytest.approx(1 / 3)


def test_conventions_wire_their_comparison_and_low_threshold():
    # Every joint of person 0 at error exactly 0.5, of person 1 at 0.105 (inside 0.11, outside 0.10).
    pred, gt, sizes, annotated = _people(np.stack([np.full(16, 5.0), np.full(16, 1.05)]))
    counts = pckh.score(pred, gt, sizes, annotated)
    assert pckh.hrnet_table(counts)["Mean"] == 100.0 and pckh.bearpaw_table(counts)["Mean"] == 50.0
    assert pckh.official_table(counts)["Total"] == 100.0
    assert pckh.hrnet_table(counts)["Mean@0.1"] == 0.0
    assert pckh.hrnet_slipped_mean_at_01(counts) == 50.0


def test_non_annotated_joints_are_excluded_whatever_they_hold():
    pred, gt, sizes, annotated = _people([[1.0], [1.0], [100.0]], annotated=[[True], [True], [False]])
    gt[2] = np.nan  # ground truth of a missing joint may be anything, NaN included
    errors = pckh.normalized_errors(pred, gt, sizes, annotated)
    assert np.isnan(errors[2, 0])
    within, counts = pckh.count_within(errors, [0.5])
    assert counts.tolist() == [2] and within.tolist() == [[2]]


def test_nan_prediction_at_annotated_joint_is_a_miss():
    pred, gt, sizes, annotated = _people([[1.0], [1.0]])
    pred[1, 0] = np.nan
    assert pckh.correct_fractions(pckh.normalized_errors(pred, gt, sizes, annotated), [0.5])[0, 0] == 0.5


def _two_joint_case():
    """Subset (right_ankle, head_top): ankle 1 of 1 annotated correct, head top 1 of 3 correct."""
    subset = JointSubset.parse("right_ankle,head_top")
    pred, gt, sizes, annotated = _people([[1.0, 1.0], [9.0, 9.0], [9.0, 9.0]],
                                         annotated=[[True, True], [False, True], [False, True]])
    return subset, pckh.score(pred, gt, sizes, annotated, joints=subset)


def test_weighted_and_plain_means_differ_as_defined():
    _, counts = _two_joint_case()
    # HRNet: pooled 2 of 4 = 50; bearpaw: (100 + 33.3) / 2 = 66.7.
    assert pckh.hrnet_table(counts)["Mean"] == pytest.approx(50.0)
    assert pckh.bearpaw_table(counts)["Mean"] == pytest.approx(200 / 3)


def test_subset_rows_only_over_present_joints():
    _, counts = _two_joint_case()
    table = pckh.hrnet_table(counts)
    assert set(table) == {"Head", "Ankle", "Mean", "Mean@0.1"}
    assert table["Ankle"] == pytest.approx(100.0)  # only the right ankle is in the subset
    assert pckh.per_joint_table(counts) == pytest.approx({"right_ankle": 100.0, "head_top": 100 / 3})


def test_subset_mean_leaves_out_pelvis_and_thorax():
    subset = JointSubset.parse("torso_head")  # right_hip, left_hip, pelvis, thorax, upper_neck, head_top
    # Hips, neck and head top all wrong; pelvis and thorax right: Mean must be 0, not 33.
    rows = [9.0, 9.0, 1.0, 1.0, 9.0, 9.0]
    pred, gt, sizes, annotated = _people([rows, rows])
    counts = pckh.score(pred, gt, sizes, annotated, joints=subset)
    assert pckh.hrnet_table(counts)["Mean"] == 0.0
    assert pckh.bearpaw_table(counts)["Mean"] == 0.0
    assert pckh.per_joint_table(counts)["pelvis"] == 100.0


def test_counts_of_batches_merge_to_counts_of_all():
    pred, gt, sizes, annotated = _people(np.random.default_rng(1).uniform(0, 9, (6, 16)))
    whole = pckh.score(pred, gt, sizes, annotated)
    merged = pckh.score(pred[:2], gt[:2], sizes[:2], annotated[:2]).merge(
        pckh.score(pred[2:], gt[2:], sizes[2:], annotated[2:]))
    assert pckh.report(merged) == pckh.report(whole) and merged.num_people == 6


def test_score_predictions_for_training_validation():
    from types import SimpleNamespace

    subset = JointSubset.parse("wrists")
    pred, gt, _, annotated = _people([[1.0, 9.0], [1.0, 1.0], [9.0, 9.0]])
    boxes = np.array([[0, 0, 6, 8], [10, 10, 16, 18], [0, 0, 0, 0]], float)  # head size 0.6 * 10 = 6 px
    result = pckh.score_predictions(
        SimpleNamespace(joints=pred, gt_joints=gt, annotated=annotated, head_boxes=boxes,
                        has_head_box=np.array([True, True, False])), subset)
    # Person 2 has no head box and is left out; errors 1/6 (right) and 9/6 (wrong) on the other two.
    assert result["per_joint"] == {"right_wrist": 100.0, "left_wrist": 50.0}
    assert result["mean"] == pytest.approx(75.0) and result["num_people"] == 2
    assert result["per_joint@0.1"] == {"right_wrist": 0.0, "left_wrist": 0.0}


def test_subset_picks_its_columns_from_16_joint_ground_truth():
    subset = JointSubset.parse("wrists")
    rng = np.random.default_rng(0)
    gt16 = rng.uniform(0, 100, (4, 16, 2))
    annotated16 = np.ones((4, 16), bool)
    annotated16[0, 15] = False
    pred = gt16[:, [10, 15]] + [[[1.0, 0.0]]]
    sizes = np.full(4, 10.0)
    full = pckh.score(pred, gt16, sizes, annotated16, joints=subset)
    sliced = pckh.score(pred, gt16[:, [10, 15]], sizes, annotated16[:, [10, 15]], joints=subset)
    np.testing.assert_array_equal(full.within_le, sliced.within_le)
    assert full.annotated.tolist() == [4, 3]


def test_official_head_ubody_and_auc():
    # head top always right, upper neck always wrong; errors of the other joints at 0.
    errors_px = np.zeros((2, 16))
    errors_px[:, 8] = 9.0
    counts = pckh.score(*_people(errors_px))
    official = pckh.official_table(counts)
    assert official["Head"] == pytest.approx(50.0)  # mean of upper neck (0) and head top (100)
    assert pckh.hrnet_table(counts)["Head"] == 100.0  # HRNet's Head is the head top alone
    assert official["UBody"] == 100.0
    assert official["Total"] == pytest.approx(100 * 13 / 14)
    # Error 0 is within every threshold (0 <= 0), so the curve is flat: AUC == Total.
    assert official["AUC"] == pytest.approx(100 * 13 / 14)


def test_area_under_curve_is_trapezoid_on_unit_axis():
    assert pckh.area_under_curve(pckh.THRESHOLDS * 200) == pytest.approx(50.0)  # 0..100 straight line
    assert pckh.THRESHOLDS[10] == 0.1 and pckh.THRESHOLDS[50] == 0.5 and len(pckh.THRESHOLDS) == 51


def test_format_table_shows_all_conventions():
    _, counts = _two_joint_case()
    text = pckh.format_table(counts, title="demo")
    for needle in ("HRNet/mmpose", "bearpaw", "official MPII toolkit", "head_top", "50.00", "66.67"):
        assert needle in text


def test_visible_and_occluded_joints_are_scored_apart():
    from types import SimpleNamespace

    subset = JointSubset.parse("wrists")
    # Three people, head size 6 px; errors: person 1 both right, person 2 right wrist wrong, person 3 both wrong.
    gt = np.zeros((3, 2, 2))
    pred = gt + np.array([[[1.0, 0], [1, 0]], [[9, 0], [1, 0]], [[9, 0], [9, 0]]])
    boxes = np.tile([[0, 0, 6, 8]], (3, 1)).astype(float)
    annotated = np.array([[True, True], [True, True], [True, False]])
    visible = np.array([[True, False], [False, True], [False, False]])  # a non-annotated joint is never scored
    result = pckh.score_predictions(SimpleNamespace(joints=pred, gt_joints=gt, annotated=annotated, head_boxes=boxes,
                                                    has_head_box=np.ones(3, bool), visible=visible), subset)
    # visible: person 1 right wrist (hit), person 2 left wrist (hit); occluded: p1 left (hit), p2 right (miss),
    # p3 right (miss); p3's left wrist is not annotated and counts nowhere.
    assert result["visible"]["per_joint"] == {"right_wrist": 100.0, "left_wrist": 100.0}
    assert result["occluded"]["per_joint"] == {"right_wrist": 0.0, "left_wrist": 100.0}
    assert result["visible"]["mean"] == 100.0 and result["occluded"]["mean"] == pytest.approx(100 / 3)
    assert result["mean"] == pytest.approx(60.0)
    table = pckh.visibility_table(result)
    assert "occluded" in table.splitlines()[-1] and table.splitlines()[-1].split()[1] == "3"


# --- rows, Mean joints and names from the subset's layout (issue 35) --------------------------------

def test_mpii_rows_and_official_rows_are_the_former_constants():
    mpii16 = JointSubset.parse("all").layout
    assert pckh.row_names(mpii16) == ROWS
    # The literals the module held before layouts: Head = upper neck (8) and head top (9), UBody = columns 10..15.
    assert pckh.official_rows(mpii16) == (("Head", (8, 9)), ("Shoulder", (12, 13)), ("Elbow", (11, 14)),
                                          ("Wrist", (10, 15)), ("Hip", (2, 3)), ("Knee", (1, 4)),
                                          ("Ankle", (0, 5)))
    assert tuple(mpii16.index(j) for j in pckh.OFFICIAL_UPPER_BODY) == (10, 11, 12, 13, 14, 15)
    counts = pckh.score(*_people(np.zeros((2, 16))))
    assert counts.mean_joints == tuple(i for i in range(16) if i not in (6, 7))   # pelvis, thorax left out


def test_the_bearpaw_s2_table_text_is_unchanged(truth):
    counts, _ = _report(truth, "bearpaw-hg_s2_b1.mat")
    lines = pckh.format_table(counts, "bearpaw-hg_s2_b1.mat").splitlines()
    # Printed before the rows came from the layout (../shared/mpii/preds/bearpaw-hg_s2_b1.mat).
    assert lines[:9] == [
        "bearpaw-hg_s2_b1.mat", "PCKh on 2958 people, joints: all", "",
        "convention                         Head Shoulder    Elbow    Wrist      Hip"
        "     Knee    Ankle     Mean Mean@0.1",
        "HRNet/mmpose  (<=, weighted)      95.80    94.57    88.12    83.31    86.24"
        "    80.88    77.44    87.30    23.91",
        "bearpaw       (<, plain mean)     95.80    94.57    88.12    83.31    86.24"
        "    80.88    77.44    86.76    23.72",
        "",
        "official MPII toolkit (<=)         Head Shoulder    Elbow    Wrist      Hip"
        "     Knee    Ankle    UBody    Total      AUC",
        "                                   96.7     94.6     88.1     83.3     86.2"
        "     80.9     77.4     88.7     87.3     57.4"]
    assert lines[12] == "right_ankle           2115    77.92    21.51    50.90"
    assert lines[18] == "pelvis                2878    90.41    17.41    52.96"
    assert lines[-1] == "(pelvis and thorax listed for completeness; no Mean, Total or AUC includes them)"
    assert len(lines) == 29


def _coco_case():
    """Five COCO people, head size 10 px: every joint right (error 0.3) except the nose (error 0.8, wrong) and,
    for the first two people, the left wrist (wrong)."""
    errors = np.full((5, 17), 3.0)
    errors[:, 0] = 8.0
    errors[:2, 9] = 8.0
    return _people(errors)


def test_a_coco17_subset_gets_its_layouts_rows_mean_and_joint_names():
    subset = JointSubset.parse("coco17:all")
    counts = pckh.score(*_coco_case(), joints=subset)
    hrnet, bearpaw = pckh.hrnet_table(counts), pckh.bearpaw_table(counts)
    assert list(hrnet) == [*ROWS, "Mean", "Mean@0.1"] and list(bearpaw) == list(hrnet)
    assert hrnet["Head"] == pytest.approx(80.0)             # nose, eyes and ears: (0 + 4 x 100) / 5
    assert hrnet["Wrist"] == pytest.approx(80.0)            # left wrist 60, right wrist 100
    assert hrnet["Shoulder"] == 100.0
    # COCO leaves no joint out of the Mean: 17 x 5 annotated, 5 nose and 2 wrist misses.
    assert hrnet["Mean"] == pytest.approx(100 * (85 - 7) / 85)
    assert counts.mean_joints == tuple(range(17))
    assert list(pckh.per_joint_table(counts)) == list(subset.names)
    assert pckh.per_joint_table(counts)["nose"] == 0.0 and pckh.per_joint_table(counts)["left_wrist"] == 60.0


def test_the_official_mpii_table_refuses_a_coco17_subset_and_the_report_leaves_it_out():
    counts = pckh.score(*_coco_case(), joints="coco17:all")
    with pytest.raises(ValueError, match=r"official MPII toolkit.*layout mpii16.*not for layout coco17"):
        pckh.official_table(counts)
    result = pckh.report(counts)
    assert list(result) == ["hrnet", "bearpaw", "per_joint", "curve"]
    assert result["curve"][50] == pytest.approx(result["hrnet"]["Mean"])
    text = pckh.format_table(counts)
    assert "joints: coco17:all" in text and "not computed for layout coco17" in text
    assert "UBody" not in text and "left_shoulder" in text and "listed for completeness" not in text


def test_a_coco17_subset_picks_its_columns_from_17_joint_ground_truth():
    subset = JointSubset.parse("coco17:wrists")              # left_wrist 9, right_wrist 10
    pred, gt, sizes, annotated = _coco_case()
    full = pckh.score(pred[:, [9, 10]], gt, sizes, annotated, joints=subset)
    assert pckh.per_joint_table(full) == {"left_wrist": 60.0, "right_wrist": 100.0}
    assert list(pckh.hrnet_table(full)) == ["Wrist", "Mean", "Mean@0.1"]


def test_counts_of_two_layouts_do_not_merge():
    pred, gt, sizes, annotated = _people(np.ones((2, 2)))
    mpii_counts = pckh.score(pred, gt, sizes, annotated, joints="head_top,right_wrist")          # indices 9, 10
    coco_counts = pckh.score(pred, gt, sizes, annotated, joints="coco17:left_wrist,right_wrist")  # indices 9, 10
    with pytest.raises(ValueError, match="different joints"):
        mpii_counts.merge(coco_counts)


def test_coco_people_are_normalised_by_their_person_box_as_mmpose_bbox_pck():
    """coco17 has no head boxes: the 0.5 column is PCK@0.05 of the annotated box's longer side (mmpose's
    `PCKAccuracy(norm_item="bbox")`); the crop box the model saw is that side x 1.25."""
    import types

    from kpt_tf.geometry import BOX_PADDING

    longer = np.array([100.0, 200.0])                 # the annotated boxes' longer sides
    gt = np.zeros((2, 17, 2))
    pred = gt.copy()
    pred[:, :, 0] = 0.04 * longer[:, None]            # inside 0.05 x side
    pred[:, 5, 0] = 0.06 * longer                     # left_shoulder: outside
    predictions = types.SimpleNamespace(
        joints=pred, gt_joints=gt, annotated=np.ones((2, 17), bool), head_boxes=np.zeros((2, 4)),
        has_head_box=np.zeros(2, bool), box_sides=longer * BOX_PADDING, visible=None)
    out = pckh.score_predictions(predictions, "coco17:all")
    assert out["num_people"] == 2 and out["per_joint"]["left_shoulder"] == 0.0
    assert out["per_joint"]["nose"] == 100.0 and out["mean"] == pytest.approx(100.0 * 16 / 17)
    assert out["mean@0.1"] == 0.0                     # 0.01 x side: nothing that far off counts

"""`kpt_tf.evaluate` on COCO records: OKS AP by pycocotools against the annotation file the records came from.

The geometry chain (record crop -> model input -> image pixels -> COCO image ids) is checked with an oracle: the
heatmaps of the records' own joints, decoded, written and scored as any model's predictions."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

INPUT_SIZE = 128


@pytest.fixture(scope="module")
def coco_data(tmp_path_factory):
    """Embedded COCO people: (records directory, the val ground-truth json)."""
    from data_prep.embedded import ensure_embedded_dataset

    root = tmp_path_factory.mktemp("coco_eval")
    records = ensure_embedded_dataset(root, num_train=4, num_val=12, seed=5, input_size=INPUT_SIZE, num_workers=1,
                                      progress=False, layout="coco17")
    return records, root / "synth" / "person_keypoints_val.json"


def oracle_predictions(records, codec, subset):
    """`predict_dataset` with a 'network' whose heatmaps are the records' own joints, rendered by the codec."""
    import tensorflow as tf

    from kpt_tf.data import pipeline
    from kpt_tf.inference import predict_dataset

    options = pipeline.StreamOptions(batch_size=4, training=False, input_size=codec.input_size, with_meta=True)
    ds = pipeline.make_dataset(records, "val", subset, options)
    truth = iter([codec.encode(b["joints"], tf.ones_like(b["annotated"]))[0] for b in ds])
    return predict_dataset(lambda images: next(truth), ds, codec)


def test_the_records_own_joints_score_as_near_perfect_keypoints(coco_data, tmp_path):
    from kpt_tf.codec import HeatmapCodec
    from kpt_tf.evaluate import score_coco_predictions
    from kpt_tf.joints import JointSubset
    from kpt_tf.metrics import coco

    records, ground_truth = coco_data
    subset = JointSubset.parse("coco17:all")
    preds = oracle_predictions(records, HeatmapCodec(INPUT_SIZE, INPUT_SIZE // 4, 2.0), subset)
    result = score_coco_predictions(preds, ground_truth, tmp_path / "results.json", title="oracle")
    people = json.loads(ground_truth.read_text())["annotations"]
    assert result["people"] == sum(p["num_keypoints"] > 0 and not p["iscrowd"] for p in people) == len(preds.joints)
    # quarter-pixel decoding of 32-px heatmaps of a 128-px input: every person matched at OKS 0.5, most at 0.95
    assert result["AP50"] == 1.0 and result["AP"] > 0.8, result
    # the file is what pycocotools reads directly, with the same figures
    assert coco.evaluate_coco_files(ground_truth, tmp_path / "results.json")["AP"] == result["AP"]
    written = json.loads((tmp_path / "results.json").read_text())
    labelled = np.array([p["keypoints"][2::3] for p in people if p["num_keypoints"]]) > 0
    assert len(written) == len(preds.joints) and labelled.any()


@pytest.mark.slow
def test_cli_scores_a_coco17_model_and_needs_the_annotation_file(coco_data, tmp_path):
    from configs.base import base_config
    from kpt_tf import workdir as wd
    from kpt_tf.joints import JointSubset
    from kpt_tf.models import build_net

    records, ground_truth = coco_data
    config = base_config()
    config.joints = "coco17:all"
    config.model.num_stacks, config.model.channels, config.model.depth = 1, 8, 1
    config.model.input_size = INPUT_SIZE
    model = tmp_path / "model"
    model.mkdir()
    build_net(config, JointSubset.parse(config.joints)).save(model / wd.BEST_MODEL)   # untrained: any AP is fine
    wd.save_config(config, model)
    args = [sys.executable, "-m", "kpt_tf.evaluate", "--model", str(model), "--data", str(records)]
    refused = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "holds COCO records, scored by OKS AP" in refused.stderr, refused.stderr[-2000:]
    done = subprocess.run(args + ["--coco_gt", str(ground_truth), "--coco_results", str(tmp_path / "r.json"),
                                  "--json", str(tmp_path / "ap.json")], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads((tmp_path / "ap.json").read_text())
    assert set(figures) >= {"AP", "AP50", "AR", "people"} and 0.0 <= figures["AP"] <= 1.0
    assert "AP50" in done.stdout and len(json.loads((tmp_path / "r.json").read_text())) > 0

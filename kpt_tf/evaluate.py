"""Score MPII predictions with PCKh in the HRNet/mmpose, bearpaw and official-toolkit conventions.

File mode (one command line):
  python -m kpt_tf.evaluate --gt ../shared/mpii/detections_our_format.mat
      --preds ../shared/mpii/preds/bearpaw-hg_s2_b1.mat [--json out.json]

Prints the tables (PCKh@0.5, @0.1, AUC, per joint); --json writes
{"hrnet": {...}, "bearpaw": {...}, "official": {...}, "per_joint": {...}, "curve": [51 values]} in percent.
A missing or malformed file ends the run with a message naming it and exit code 2.

Model mode:
  python -m kpt_tf.evaluate --model SAVEDMODEL_OR_WORKDIR_OR_.keras --data TFRECORD_DIR [--split val]
      [--flip_test] [--out_mat preds.mat] [--json out.json]

Runs the model over the split's person crops (flip test, quarter-pixel decoding; the one prediction path
of kpt_tf.inference), maps predictions back to source-image pixels through each record's stored crop
transform, scores them with the same PCKh code (per joint of the model's subset), and optionally writes
the predictions as an MPII-format .mat (1-based, in the annotation file's order) for the official toolkit.

MPII test-server submission (the test split has no ground truth, so nothing is scored):
  python -m kpt_tf.evaluate --model M --data RECORDS --split test --submission pred_keypoints_mpii.mat
      [--release mpii_human_pose_v1_u12_1.mat]

writes the release's annotation list of the test images with every test person's 16 predicted points
(kpt_tf.mpii.submission). The release is the one the records were converted from unless --release names it
(needed when they came from HRNet's test.json). Each record is matched to its release rectangle (image,
objpos, scale) and every single-person test person must have a record, both checked before the model runs;
the file is read back and compared with the predictions after writing.

COCO model mode on a detector's boxes (the top-down protocol as HRNet runs it):
  python -m kpt_tf.evaluate --model M --coco_gt person_keypoints_val2017.json --coco_dets detections.json
      --images_dir val2017 [--det_score_threshold 0.0] [--coco_results R] [--json out.json]

reads the person boxes of a COCO detection-results file (score >= the threshold), runs the model on each image's
boxes (kpt_tf.predict.Predictor: the records' crop convention, flip test), rescores box score x mean joint score,
OKS-NMSes per image and scores with pycocotools. Ground-truth images missing from --images_dir are skipped with a
counted warning and the AP is over the present ones only (all missing: refused).

COCO file mode (keypoint results scored by pycocotools' COCOeval, the reference implementation):
  python -m kpt_tf.evaluate --coco_gt person_keypoints_val2017.json --coco_preds results.json [--json out.json]

prints OKS AP, AP50, AP75, APm, APl and AR (kpt_tf.metrics.coco); --json writes {"AP": ..., "AP50": ..., ...}.

The COCO evaluations of a model (on records, on a detector's boxes) are kpt_tf.evaluate_coco's; this module holds
MPII's and the command line of every mode.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

from absl import flags

from kpt_tf import cli, mpii
from kpt_tf.evaluate_coco import evaluate_coco_detections, evaluate_coco_model
from kpt_tf.evaluate_common import load_model_for_eval
from kpt_tf.metrics import pckh

FLAGS = flags.FLAGS
def define_flags():
    """CLI flags (defined only when run as a program, so importing this module defines none)."""
    flags.DEFINE_string("gt", None, "Ground-truth .mat in the layout of detections_our_format.mat / gt_valid.mat.")
    flags.DEFINE_string("preds", None, "Predictions (.mat or .h5; preds (N,16,2) or (2,16,N), or pos_pred_src "
                        "(16,2,N)), 1-based MPII pixels, same people and order as --gt.")
    flags.DEFINE_string("json", None, "Also write the figures as JSON to this path.")
    flags.DEFINE_string("coco_gt", None, "COCO file mode: a COCO keypoint ground truth (person_keypoints_*.json).")
    flags.DEFINE_string("coco_preds", None, "COCO file mode: a COCO keypoint-results JSON (a list of {image_id, "
                        "category_id, keypoints, score}); scored by pycocotools' COCOeval (OKS AP / AR).")
    flags.DEFINE_string("coco_results", None, "Model mode on COCO records: also keep the predictions as a COCO "
                        "keypoint-results JSON here (what --coco_preds reads).")
    flags.DEFINE_string("coco_dets", None, "Model mode on detector boxes: a COCO detection-results JSON (a list of "
                        "{image_id, category_id, bbox [x, y, w, h], score}) of person boxes on --coco_gt's images, "
                        "read from --images_dir (the top-down protocol as HRNet runs it).")
    flags.DEFINE_string("images_dir", None, "With --coco_dets: the directory of --coco_gt's images (val2017).")
    flags.DEFINE_float("det_score_threshold", 0.0, "With --coco_dets: keep person boxes scoring at least this "
                       "(HRNet's TEST.IMAGE_THRE, 0.0 in its COCO configs).")
    flags.DEFINE_bool("verbose", False, "COCO file mode: also print pycocotools' own output (loading, evaluation, "
                      "its summary) before the table.")
    flags.DEFINE_string("model", None, "Model mode: an exported SavedModel, a training workdir, or a .keras file.")
    flags.DEFINE_string("data", None, "Model mode: TFRecord directory written by data_prep.mpii_to_tfrecord.")
    flags.DEFINE_string("split", "val", "Model mode: the split to evaluate.")
    flags.DEFINE_bool("flip_test", True, "Model mode: average with the mirrored crop (flip-closed subsets only).")
    flags.DEFINE_bool("flip_shift", False, "Model mode: HRNet's one-pixel shift of the flipped heatmap.")
    flags.DEFINE_bool("skip_damaged_records", False, "Model mode: skip (and count) the records of a damaged shard "
                      "from its first damaged one on, instead of stopping with the shard's name.")
    flags.DEFINE_string("out_mat", None, "Model mode: write predictions as an MPII .mat (preds, pos_pred_src).")
    flags.DEFINE_string("submission", None, "Model mode, test split: write MPII's test-server submission "
                        "(pred_keypoints_mpii.mat: the release's test annotation list with the predicted points).")
    flags.DEFINE_string("release", None, "With --submission: the release mpii_human_pose_v1_u12_1.mat (default: "
                        "the annotation file the records were converted from, when it is the release).")


PROGRAM = "kpt_tf.evaluate"


def score_files(gt_path, preds_path) -> pckh.PCKhCounts:
    """PCKh counts of a prediction file against a ground-truth file (ValueError on a bad file)."""
    truth = mpii.load_ground_truth(gt_path)
    preds = mpii.load_predictions(preds_path, expected_count=len(truth))
    return pckh.score(preds, truth.positions, truth.head_sizes, truth.annotated)


def evaluate_files(gt_path, preds_path) -> dict:
    """The JSON dict (see module doc) for a prediction file against a ground-truth file."""
    return pckh.report(score_files(gt_path, preds_path))


def write_results(counts: pckh.PCKhCounts, json_path: Optional[str], title: str = "", scored=None) -> dict:
    """Print the tables and, if asked, write the JSON; shared by every mode of this CLI. `scored`: the
    model mode's `score_predictions` result, whose visible / occluded split is added when the data has one."""
    results = pckh.report(counts)
    print(pckh.format_table(counts, title))
    if scored is not None and "visible" in scored:
        print("\n" + pckh.visibility_table(scored))
        results["by_visibility"] = by_visibility(scored)
    if scored is not None and "damaged_records" in scored.get("report", {}):
        results["damaged_records"] = damaged = scored["report"]["damaged_records"]
        lost = "an unknown number of" if damaged["records_lost"] is None else damaged["records_lost"]
        print(f"\ndamaged shards: {damaged['shards']}; {lost} records skipped: absent from these figures "
              "(--out_mat keeps their people at (0, 0))")
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # allow_nan=False: a figure that is undefined is stored as null, never as invalid JSON.
        path.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
        print(f"wrote {path}")
    return results


def _score(preds, subset, title: str) -> dict:
    out = pckh.score_predictions(preds, subset)
    out["table"] = pckh.format_table(out["counts"], title)
    out["report"] = pckh.report(out["counts"])
    if "visible" in out:
        out["table"] += "\n\n" + pckh.visibility_table(out)
        out["report"]["by_visibility"] = by_visibility(out)
    return out


def by_visibility(scored: dict) -> dict:
    """The JSON of the visible / occluded split (null where a split holds no such joint)."""
    def finite(value):
        return None if value is None or value != value else float(value)

    return {k: {"mean": finite(scored[k]["mean"]),
                "per_joint": {j: finite(v) for j, v in scored[k]["per_joint"].items()}}
            for k in ("visible", "occluded")}


def evaluate_model(model_path, data_dir, split: str = "val", config=None, flip_test: bool = True,
                   flip_shift: bool = False, out_mat=None, batch_size: int = 16,
                   skip_damaged: bool = False, submission=None, release=None) -> dict:
    """PCKh of a trained model on a TFRecord split; figures in the layout of `score_predictions` plus
    `table` (text) and `report` (the JSON of file mode). skip_damaged: the people of a damaged shard's records
    from its first damaged one on are missing (counted in `report["damaged_records"]`; in `out_mat` they stay
    at (0, 0) like the converter's skips, so they score as misses).
    A split without ground truth (MPII's test people) is not scored: the result holds `predictions`,
    `no_ground_truth` True, `table` and `report` ({"people", "submission"}). `submission`: write MPII's
    test-server file there (`write_test_submission`), its release `release` or the records' own."""
    from kpt_tf.data import damaged as dmg
    from kpt_tf.data import pipeline, splits
    from kpt_tf.inference import predict_dataset

    plan = submission_plan(data_dir, split, release, skip_damaged) if submission else None
    predict, codec, subset = load_model_for_eval(model_path, config, flip_test, flip_shift)
    if plan is not None and len(subset) != 16:
        raise ValueError(f"--submission needs MPII's 16 joints; this model predicts {len(subset)} ({subset.name})")
    damaged = dmg.damaged_records(data_dir, split) if skip_damaged else []
    if damaged:
        print(dmg.describe_damaged(split, damaged), file=sys.stderr)
    ds = pipeline.make_dataset(data_dir, split, subset, pipeline.StreamOptions(
        batch_size=batch_size, training=False, input_size=codec.input_size, with_meta=True, skip_damaged=skip_damaged))
    with dmg.naming_damaged_shards(data_dir, split):
        preds = predict_dataset(predict, ds, codec)
    if out_mat:
        people = splits.split_people_count(data_dir, split)
        if people is None:
            print(f"kpt_tf.evaluate: warning: {data_dir} has no complete manifest.json, so people the converter "
                  f"skipped after the last record of {split!r} are not in {out_mat}", file=sys.stderr)
        write_predictions_mat(out_mat, preds, subset, people)
    written = write_test_submission(submission, plan, preds) if plan is not None else None
    if not preds.annotated.any():
        table = (f"model: {model_path}\ndata: {data_dir} ({split})\n{len(preds.joints)} people predicted; the split "
                 "has no ground truth (MPII withholds the test set's), so nothing is scored")
        return {"predictions": preds, "no_ground_truth": True, "table": table,
                "report": {"people": len(preds.joints), "submission": str(submission) if written else None}}
    out = _score(preds, subset, f"model: {model_path}\ndata: {data_dir} ({split})")
    if skip_damaged:
        out["report"]["damaged_records"] = dmg.damaged_totals(damaged)
    return out


def write_predictions_mat(path, preds, subset, people: int | None = None) -> None:
    """Predictions in MPII's .mat layout, ordered by each person's position in the annotation file's split.

    People the converter skipped keep (0, 0) (scored as misses, never silently dropped), the trailing ones
    too when `people` (the split's length, `splits.split_people_count`) is given."""
    import numpy as np

    if len(subset) != 16:
        raise ValueError(f"--out_mat writes MPII's 16-joint layout; this model predicts {len(subset)} joints "
                         f"({subset.name})")
    count = max(int(preds.dataset_index.max()) + 1, int(people or 0))
    out = np.zeros((count, 16, 2))
    out[preds.dataset_index] = preds.joints
    mpii.save_predictions_mat(path, out)


def submission_plan(data_dir, split: str, release=None, skip_damaged: bool = False):
    """Before any prediction: the release template and each test record's rectangle (ValueError otherwise).
    -> (template, {dataset_index: TestRectangle})."""
    from kpt_tf.data import manifest as mf
    from kpt_tf.data import splits
    from kpt_tf.mpii import submission as sub

    manifest = mf.read_manifest(data_dir) or {}
    if release is None:
        source = (manifest.get(mf.FLAGS) or {}).get("annotations")
        if not source or not str(source).lower().endswith(".mat"):
            raise ValueError(f"--submission needs the release mpii_human_pose_v1_u12_1.mat: the records in {data_dir} "
                             f"were made from {source or 'an unknown annotation file'}; give it with --release")
        release = source
        if not Path(release).is_file():
            raise ValueError(f"--submission: the release the records were made from, {release}, is not there; "
                             "give it with --release")
    if skip_damaged:
        raise ValueError("--submission refuses --skip_damaged_records: a submission must hold every test person; "
                         "rerun the converter to redo the damaged shard")
    template = sub.load_template(release)
    fields = splits.record_people(data_dir, split)
    people = [sub.RecordPerson(int(i), str(image), center, float(scale))
              for i, image, center, scale in zip(fields["dataset_index"], fields["image_id"], fields["center"],
                                                 fields["scale"])]
    skipped = [s for s in manifest.get(mf.SKIPPED, []) if s.get(mf.SKIP_SPLIT) == split]
    return template, sub.match_records(template, people, skipped)


def write_test_submission(path, plan, preds) -> int:
    """Write the submission of `plan` (`submission_plan`) with `preds` (kpt_tf.inference.Predictions, 16
    joints): written beside `path`, read back and checked (every person holds exactly its predictions), then
    moved to `path`, so a previous file there is replaced only by a checked one. -> people written."""
    import os

    import numpy as np

    from kpt_tf.mpii import submission as sub

    template, matched = plan
    if sorted(int(i) for i in preds.dataset_index) != sorted(matched):
        raise ValueError(f"the predictions cover {len(preds.dataset_index)} test people but {len(matched)} records "
                         "were matched to the release; the records changed while the model ran?")
    predictions = {matched[int(i)].key: joints for i, joints in zip(preds.dataset_index, preds.joints)}
    path = Path(path)
    staged = path.with_name(f".check-{path.name}")
    try:
        written = sub.write_submission(staged, template, predictions)
        count, people = sub.read_submission(staged)
        back = {(int(template.test_images[p.test_position]), p.person_index): p for p in people}
        if count != len(template.test_images) or set(back) != set(predictions) or not all(
                back[k].has_point.all() and np.allclose(back[k].joints, v, rtol=0, atol=1e-9)
                for k, v in predictions.items()):
            raise ValueError(f"{path}: the submission read back does not hold the predictions it was written with")
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    return written


def mean_pose_baseline(config, split: str | None = None) -> dict:
    """PCKh of predicting the mean training pose (model-input pixels) in every validation crop.

    The constant pose goes through the same encode -> decode -> inverse crop transform -> metric path
    as a model's heatmaps, so the two numbers are comparable."""
    import tensorflow as tf

    from kpt_tf.data import pipeline, splits
    from kpt_tf.data.records import config_subset
    from kpt_tf.inference import predict_dataset
    from kpt_tf.models import codec_from_config

    subset = config_subset(config)
    codec = codec_from_config(config)
    size = int(config.model.input_size)
    mean_pose = tf.constant(splits.mean_training_pose(config.data.dir, subset, size, config.data.train_split))

    def predict(images):
        n = tf.shape(images)[0]
        joints = tf.tile(mean_pose[None], [n, 1, 1])
        return codec.encode(joints, tf.ones(tf.shape(joints)[:2]))[0]

    ds = pipeline.make_dataset(config.data.dir, split or config.data.val_split, subset,
                               pipeline.StreamOptions(batch_size=32, training=False, input_size=size, with_meta=True))
    return _score(predict_dataset(predict, ds, codec), subset, "baseline: mean training pose")


def _run_model_mode() -> None:
    from kpt_tf.data.manifest import records_layout

    if not FLAGS.data:
        cli.fail(PROGRAM, "model mode needs --data (a TFRecord directory)")
    if records_layout(FLAGS.data).oks_sigmas is not None:       # COCO's records: OKS AP, not PCKh
        _run_coco_model_mode()
        return
    if FLAGS.submission and FLAGS.split != "test":
        cli.fail(PROGRAM, f"--submission is for the test split (MPII's test server), not --split {FLAGS.split}")
    result = evaluate_model(FLAGS.model, FLAGS.data, FLAGS.split, flip_test=FLAGS.flip_test,
                            flip_shift=FLAGS.flip_shift, out_mat=FLAGS.out_mat,
                            skip_damaged=FLAGS.skip_damaged_records, submission=FLAGS.submission,
                            release=FLAGS.release)
    if result.get("no_ground_truth"):
        print(result["table"])
        if FLAGS.json:
            Path(FLAGS.json).parent.mkdir(parents=True, exist_ok=True)
            Path(FLAGS.json).write_text(json.dumps(result["report"], indent=2) + "\n")
        if FLAGS.out_mat:
            print(f"wrote {FLAGS.out_mat} (MPII .mat, 1-based, annotation-file order)")
        if FLAGS.submission:
            print(f"wrote {FLAGS.submission}: MPII test-server submission ({result['report']['people']} test people "
                  "in the release's test annotation list; read back and checked)")
        return
    write_results(result["counts"], FLAGS.json, title=f"model: {FLAGS.model}\ndata: {FLAGS.data} ({FLAGS.split})",
                  scored=result)
    if FLAGS.out_mat:
        print(f"wrote {FLAGS.out_mat} (MPII .mat, 1-based, annotation-file order)")


def _run_coco_model_mode() -> None:
    """--model M --data COCO_RECORDS --coco_gt person_keypoints_val2017.json [--coco_results R] [--json OUT]."""
    if not FLAGS.coco_gt:
        cli.fail(PROGRAM, f"{FLAGS.data} holds COCO records, scored by OKS AP against their annotation file: give "
                 "--coco_gt (the person_keypoints json they were converted from)")
    mpii_only = [f"--{name}" for name in ("out_mat", "submission") if FLAGS[name].value]
    if mpii_only:
        cli.fail(PROGRAM, f"{', '.join(mpii_only)}: MPII's files; {FLAGS.data} holds COCO records")
    result = evaluate_coco_model(FLAGS.model, FLAGS.data, FLAGS.coco_gt, FLAGS.split, FLAGS.coco_results,
                                 flip_test=FLAGS.flip_test, flip_shift=FLAGS.flip_shift)
    _report_coco(result)


def _run_coco_detections_mode() -> None:
    """--model M --coco_gt G --coco_dets D --images_dir DIR [--det_score_threshold T] [--coco_results R] [--json]."""
    mixed = [f"--{name}" for name in ("data", "coco_preds", "gt", "preds", "out_mat", "submission", "flip_shift")
             if FLAGS[name].value]
    if mixed:
        cli.fail(PROGRAM, f"--coco_dets (a model on detector boxes) cannot be combined with {', '.join(mixed)}: the "
                 "images come from --images_dir, not from records or result files (and kpt_tf.predict's flip test "
                 "has no --flip_shift)")
    needed = [f"--{name}" for name in ("model", "coco_gt", "coco_dets", "images_dir") if not FLAGS[name].value]
    if needed:
        cli.fail(PROGRAM, f"a model on detector boxes needs --model, --coco_gt, --coco_dets and --images_dir; "
                 f"missing {', '.join(needed)}")
    result = evaluate_coco_detections(FLAGS.model, FLAGS.coco_gt, FLAGS.coco_dets, FLAGS.images_dir,
                                      FLAGS.det_score_threshold, FLAGS.coco_results, flip_test=FLAGS.flip_test)
    _report_coco(result)


def _run_file_mode() -> None:
    if not FLAGS.gt or not FLAGS.preds:
        cli.fail(PROGRAM, "file mode needs both --gt and --preds (or --model and --data)")
    counts = score_files(FLAGS.gt, FLAGS.preds)
    try:
        write_results(counts, FLAGS.json, title=f"predictions: {FLAGS.preds}\nground truth: {FLAGS.gt}")
    except OSError as err:
        cli.fail(PROGRAM, f"cannot write --json {FLAGS.json!r}: {err}")


def _run_coco_file_mode() -> None:
    """--coco_gt G --coco_preds P [--json OUT] [--verbose]: OKS AP / AR by pycocotools, our table, {"AP": ...}."""
    from kpt_tf.metrics import coco

    mixed = [f"--{name}" for name in ("gt", "preds", "model", "data") if FLAGS[name].value]
    if mixed:
        cli.fail(PROGRAM, f"--coco_gt/--coco_preds (COCO file mode) cannot be combined with {', '.join(mixed)}: "
                 "give one mode (MPII file mode: --gt/--preds; model mode: --model/--data)")
    if not FLAGS.coco_gt or not FLAGS.coco_preds:
        cli.fail(PROGRAM, "COCO file mode needs both --coco_gt and --coco_preds")
    result = coco.evaluate_coco_files(FLAGS.coco_gt, FLAGS.coco_preds,
                                      pycocotools_output=sys.stdout if FLAGS.verbose else None)
    result["table"] = coco.format_table(result, title=f"predictions: {FLAGS.coco_preds}\nground truth: "
                                                      f"{FLAGS.coco_gt}")
    _report_coco(result)


def _report_coco(result: dict) -> None:
    """What every COCO mode prints and writes: the table, where --coco_results went, the figures to --json."""
    print(result["table"])
    if result.get("results"):        # the model modes, with --coco_results
        print(f"wrote {result['results']} (COCO keypoint results)")
    if FLAGS.json:
        figures = {k: v for k, v in result.items() if k not in ("table", "results")}
        path = Path(FLAGS.json)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(figures, indent=2, allow_nan=False) + "\n")
        except OSError as err:
            cli.fail(PROGRAM, f"cannot write --json {FLAGS.json!r}: {err}")
        print(f"wrote {path}")


def main(argv) -> None:
    if len(argv) > 1:
        cli.fail(PROGRAM, f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.coco_dets or FLAGS.images_dir:
        _run_coco_detections_mode()
    elif FLAGS.coco_preds or (FLAGS.coco_gt and not FLAGS.model):
        _run_coco_file_mode()
    elif FLAGS.model:      # with --coco_gt when --data holds COCO records
        _run_model_mode()
    else:
        _run_file_mode()


if __name__ == "__main__":
    define_flags()
    cli.run(main, PROGRAM)

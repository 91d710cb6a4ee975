"""Export for serving: the SavedModel agrees with the Keras model, works in image coordinates, runs
under TF's own saved_model_cli, and refuses bad inputs clearly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from kpt_tf.workdir import ExportOptions
from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(trained_workdir, exported_savedmodel, tmp_path_factory):
    from kpt_tf.export import export_workdir

    plain = exported_savedmodel
    flipped = export_workdir(trained_workdir, tmp_path_factory.mktemp("export") / "flip",
                             options=ExportOptions(flip_test=True))
    net = keras.saving.load_model(trained_workdir / "best.keras", compile=False)
    return plain, flipped, net


def _image(size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (1, size, size, 3)).astype(np.uint8)


def test_serving_equals_model_predict(exported):
    plain, _, net = exported
    size = net.inputs[0].shape[1]
    loaded = tf.saved_model.load(str(plain))
    crops = _image(size).astype(np.float32)
    served = loaded.heatmaps(tf.constant(crops)).numpy()
    np.testing.assert_allclose(served, net.predict(crops, verbose=0)[-1], atol=1e-5)


def test_keypoints_land_in_image_coordinates(exported):
    from kpt_tf.codec import HeatmapCodec

    plain, _, net = exported
    size = net.inputs[0].shape[1]
    crop = _image(size, seed=1)
    # A box whose padded square (1.25 x its side) is exactly the crop: identity crop transform.
    side = size / 1.25
    c = (size - 1) / 2.0
    box = np.array([[c - side / 2, c - side / 2, c + side / 2, c + side / 2]], np.float32)
    serve = tf.saved_model.load(str(plain)).signatures["serving_default"]
    out = serve(images=tf.constant(crop), boxes=tf.constant(box))
    heatmaps = net.predict(crop.astype(np.float32), verbose=0)[-1]
    codec = HeatmapCodec(input_size=size, heatmap_size=size // 4, sigma=1.0)
    expected, scores = codec.decode(heatmaps)
    np.testing.assert_allclose(out["keypoints"].numpy(), expected.numpy(), atol=1e-3)
    np.testing.assert_allclose(out["scores"].numpy(), scores.numpy(), atol=1e-5)
    # The same pixels pasted at an offset into a bigger image: keypoints move by exactly that offset.
    big = np.zeros((1, size + 70, size + 110, 3), np.uint8)
    big[0, 70:, 110:] = crop[0]
    moved = serve(images=tf.constant(big), boxes=tf.constant(box + np.float32([[110, 70, 110, 70]])))
    np.testing.assert_allclose(moved["keypoints"].numpy(), expected.numpy() + [110, 70], atol=1e-3)
    assert [n.decode() for n in out["joint_names"].numpy()][:2] == ["right_ankle", "right_knee"]


def test_an_export_traces_each_endpoint_once(tmp_path, monkeypatch):
    """Keras' ExportArchive traced every endpoint twice (once to list its variables, again inside TF's save
    context): 4 crops and 6 network passes for the three endpoints. kpt_tf.export saves with one trace each."""
    from kpt_tf import export
    from kpt_tf.codec import HeatmapCodec
    from kpt_tf.joints import JointSubset
    from kpt_tf.models.hourglass import build_hourglass

    traced = {"from_centers": 0, "raw_heatmaps": 0}

    def counting(name):
        original = getattr(export.PoseServer, name)

        def method(self, *args):      # tf.function reads the signature: positional arguments only
            traced[name] += 1
            return original(self, *args)

        return method

    for name in traced:
        monkeypatch.setattr(export.PoseServer, name, counting(name))
    net = build_hourglass(1, 8, 16, depth=1, input_size=64)
    export.export_net(net, HeatmapCodec(input_size=64, heatmap_size=16, sigma=2.0), JointSubset.parse("all"),
                      tmp_path / "once", options=ExportOptions(flip_test=False))
    # serving_default and serve_center_scale crop once each; each of them and the heatmaps endpoint runs the network
    assert traced == {"from_centers": 2, "raw_heatmaps": 3}


def test_one_stack_network_exports_and_serves(tmp_path):
    """A 1-stack functional model returns a bare tensor; the output contract makes the export work anyway."""
    from kpt_tf.codec import HeatmapCodec
    from kpt_tf.export import export_net
    from kpt_tf.joints import JointSubset
    from kpt_tf.models.hourglass import build_hourglass

    net = build_hourglass(1, 16, 16, depth=2, input_size=64)
    codec = HeatmapCodec(input_size=64, heatmap_size=16, sigma=2.0)
    out_dir = export_net(net, codec, JointSubset.parse("all"), tmp_path / "one_stack",
                         options=ExportOptions(flip_test=True))
    loaded = tf.saved_model.load(str(out_dir))
    crops = _image(64, seed=3).astype(np.float32)
    heatmaps = loaded.heatmaps(tf.constant(crops)).numpy()
    assert heatmaps.shape == (1, 16, 16, 16)
    box = tf.constant([[4.0, 4.0, 50.0, 60.0]])
    served = loaded.signatures["serving_default"](images=tf.constant(_image(64, seed=3)), boxes=box)
    assert served["keypoints"].shape == (1, 16, 2) and served["scores"].shape == (1, 16)
    assert np.isfinite(served["keypoints"].numpy()).all()


def test_flip_test_export_and_metadata(exported):
    _, flipped, net = exported
    meta = json.loads((flipped / "assets.extra" / "kpt_tf.json").read_text())
    assert meta["flip_test"] is True and len(meta["joints"]) == 16
    loaded = tf.saved_model.load(str(flipped))
    names = {v.name for v in loaded.variables}
    assert "stem_conv/kernel:0" in names and "head0/bias:0" in names


def _xla_functions(savedmodel_dir) -> int:
    """How many functions of the SavedModel TF must compile with XLA (`jit_compile=True`)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel.FromString((Path(savedmodel_dir) / "saved_model.pb").read_bytes())
    library = proto.meta_graphs[0].graph_def.library
    return sum(f.attr["_XlaMustCompile"].b for f in library.function)


def test_xla_export_serves_the_same_keypoints(exported, trained_workdir, tmp_path):
    """`--xla` compiles the network with XLA inside the served graph; what it serves must not change."""
    from kpt_tf.export import export_workdir
    from kpt_tf.workdir import ExportMetadata

    _, flipped, net = exported
    xla = export_workdir(trained_workdir, tmp_path / "xla", options=ExportOptions(flip_test=True, xla=True))
    assert ExportMetadata.read(xla).xla is True and ExportMetadata.read(flipped).xla is False
    assert _xla_functions(xla) >= 1 and _xla_functions(flipped) == 0
    size = net.inputs[0].shape[1]
    images = np.concatenate([_image(size, seed=s) for s in (5, 6)])
    boxes = tf.constant([[10.0, 8.0, size - 12.0, size - 4.0], [0.0, 20.0, size - 30.0, size - 1.0]])
    loaded = [tf.saved_model.load(str(d)) for d in (flipped, xla)]
    heatmaps = [m.heatmaps(tf.constant(images.astype(np.float32))).numpy() for m in loaded]
    np.testing.assert_allclose(heatmaps[1], heatmaps[0], atol=1e-4 * np.abs(heatmaps[0]).max())
    outs = [m.signatures["serving_default"](images=tf.constant(images), boxes=boxes) for m in loaded]
    # XLA reorders float sums: heatmaps agree to float32 round-off, so decoded keypoints to far below a pixel
    np.testing.assert_allclose(outs[1]["keypoints"].numpy(), outs[0]["keypoints"].numpy(), atol=1e-2)
    np.testing.assert_allclose(outs[1]["scores"].numpy(), outs[0]["scores"].numpy(), atol=1e-4)


def test_saved_model_cli_show_and_run(exported, tmp_path):
    plain, _, net = exported
    cli = shutil.which("saved_model_cli", path=str(Path(sys.executable).parent)) or "saved_model_cli"
    show = subprocess.run([cli, "show", "--dir", str(plain), "--all"], capture_output=True, text=True, timeout=300)
    assert show.returncode == 0, show.stderr[-2000:]
    assert "serving_default" in show.stdout and "serve_center_scale" in show.stdout and "boxes" in show.stdout
    np.save(tmp_path / "images.npy", np.random.default_rng(0).integers(0, 256, (1, 120, 90, 3)).astype(np.uint8))
    np.save(tmp_path / "boxes.npy", np.array([[10.0, 10.0, 80.0, 110.0]], np.float32))
    run = subprocess.run(
        [cli, "run", "--dir", str(plain), "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"images={tmp_path / 'images.npy'};boxes={tmp_path / 'boxes.npy'}"],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "keypoints" in run.stdout and "joint_names" in run.stdout
    # A float image in [0, 1]: saved_model_cli casts it to uint8 silently; the graph refuses it.
    np.save(tmp_path / "float.npy", np.random.default_rng(0).random((1, 120, 90, 3)).astype(np.float32))
    run = subprocess.run(
        [cli, "run", "--dir", str(plain), "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", f"images={tmp_path / 'float.npy'};boxes={tmp_path / 'boxes.npy'}"],
        capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "float image in [0, 1] cast to uint8" in run.stderr, run.stderr[-2000:]


def test_a_full_disk_during_export_keeps_the_previous_export_and_an_unrelated_out_is_refused(exported,
                                                                                             trained_workdir,
                                                                                             tmp_path):
    from kpt_tf.export import REPLACED_PREFIX, STAGING_PREFIX, export_workdir
    from tests.conftest import file_size_limit

    out = Path(shutil.copytree(exported[1], tmp_path / "sm"))     # a previous export (flip test on) at --out

    def files():
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    before = files()
    largest = max(len(data) for data in before.values())
    # Writes past half the largest file fail (EFBIG, as ENOSPC on a full disk) in a re-export to the same place.
    command = [sys.executable, "-m", "kpt_tf.export", "--workdir", str(trained_workdir), "--out", str(out),
               "--noflip_test"]
    failed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                            preexec_fn=file_size_limit(largest // 2))
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert failed.stderr.strip().splitlines()[-1] == (
        f"kpt_tf.export: error: {out}: cannot write the SavedModel (File too large); the previous export there "
        "is intact")
    assert files() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]     # no staging or replaced directory left
    # A new export replaces the previous one (another signature set: flip test off).
    export_workdir(trained_workdir, out, options=ExportOptions(flip_test=False))
    assert json.loads((out / "assets.extra" / "kpt_tf.json").read_text())["flip_test"] is False
    assert not list(tmp_path.glob(STAGING_PREFIX + "*")) and not list(tmp_path.glob(REPLACED_PREFIX + "*"))

    unrelated = tmp_path / "home"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"not empty and not a kpt_tf export \(holds notes.txt\)"):
        export_workdir(trained_workdir, unrelated)
    assert [p.name for p in unrelated.iterdir()] == ["notes.txt"]


def test_images_over_the_pixel_limit_are_refused_before_they_are_read(exported, tmp_path):
    from kpt_tf import workdir as wd
    from kpt_tf.codec import HeatmapCodec
    from kpt_tf.export import export_net
    from kpt_tf.joints import JointSubset

    _, _, net = exported
    out = export_net(net, HeatmapCodec(input_size=64, heatmap_size=16, sigma=1.0), JointSubset.parse("all"),
                     tmp_path / "sm", options=ExportOptions(flip_test=False, max_image_pixels=100 * 100))
    assert wd.ExportMetadata.read(out).max_image_pixels == 10_000
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    box = tf.constant([[10.0, 10.0, 60.0, 90.0]])
    assert np.all(np.isfinite(serve(images=tf.constant(_image(100)), boxes=box)["keypoints"].numpy()))
    wide = np.zeros((1, 100, 101, 3), np.uint8)
    with pytest.raises(tf.errors.InvalidArgumentError, match="images must hold at most 10,000 pixels"):
        serve(images=tf.constant(wide), boxes=box)


def test_bad_serving_inputs_are_refused_clearly(exported):
    plain, _, _ = exported
    serve = tf.saved_model.load(str(plain)).signatures["serving_default"]
    images = tf.constant(np.concatenate([_image(100), _image(100, seed=1)]))
    with pytest.raises(Exception, match="same first dimension"):
        serve(images=images, boxes=tf.constant([[0.0, 0.0, 50.0, 50.0]]))
    with pytest.raises(Exception, match="x2 > x1"):
        serve(images=images, boxes=tf.constant([[0.0, 0.0, 50.0, 50.0], [10.0, 10.0, 5.0, 50.0]]))
    with pytest.raises(Exception, match="uint8|dtype|int"):
        serve(images=tf.zeros((1, 100, 100, 3), tf.float32), boxes=tf.constant([[0.0, 0.0, 50.0, 50.0]]))
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        serve(images=tf.zeros((1, 100, 100), tf.uint8), boxes=tf.constant([[0.0, 0.0, 50.0, 50.0]]))


@pytest.mark.parametrize("case, message", [
    ("float_cast", "float image in \\[0, 1\\] cast to uint8"),
    ("zero_size", "must not be empty"),
    ("infinite_box", "boxes must be finite"),
    ("zero_area_box", "x2 > x1"),
    ("box_outside", "outside its image"),
    ("absurd_box", "more than 4 times as large as its image"),
    ("batch_mismatch", "same first dimension"),
])
def test_serving_refuses_inputs_that_would_give_plausible_keypoints(exported, case, message):
    plain, _, _ = exported
    serve = tf.saved_model.load(str(plain)).signatures["serving_default"]
    images = _image(100)
    boxes = np.array([[10.0, 10.0, 60.0, 90.0]], np.float32)
    if case == "float_cast":      # what saved_model_cli makes of a float32 [0, 1] .npy
        images = (images / 255.0).astype(np.uint8)
    elif case == "zero_size":
        images = np.zeros((1, 0, 0, 3), np.uint8)
    elif case == "infinite_box":
        boxes[0, 2] = np.inf
    elif case == "zero_area_box":
        boxes[0, 2] = boxes[0, 0]
    elif case == "box_outside":
        boxes = boxes + 500.0
    elif case == "absurd_box":     # finite, overlapping the image, and once answered with NaN keypoints
        boxes = np.array([[-1e30, -1e30, 1e30, 1e30]], np.float32)
    elif case == "batch_mismatch":
        boxes = np.repeat(boxes, 2, axis=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(images=tf.constant(images), boxes=tf.constant(boxes))
    ok = serve(images=tf.constant(_image(100)), boxes=tf.constant([[10.0, 10.0, 60.0, 90.0]]))
    assert np.all(np.isfinite(ok["keypoints"].numpy()))


def test_eager_server_checks_rank_first(exported):
    from kpt_tf.codec import HeatmapCodec
    from kpt_tf.export import PoseServer
    from kpt_tf.joints import JointSubset

    _, _, net = exported
    server = PoseServer(net, HeatmapCodec(input_size=64, heatmap_size=16, sigma=2.0), JointSubset.parse("all"),
                        ExportOptions(flip_test=False))
    with pytest.raises(ValueError, match=r"images must be uint8 \[N, H, W, 3\]"):
        server.serve_boxes(tf.zeros((100, 100, 3), tf.uint8), tf.constant([[0.0, 0.0, 50.0, 50.0]]))


def test_evaluate_cli_model_mode_on_export_and_workdir(exported, trained_workdir, embedded_records, tmp_path):
    _, flipped, _ = exported
    results = {}
    for name, model in (("export", flipped), ("workdir", trained_workdir)):
        out = tmp_path / f"{name}.json"
        done = subprocess.run([sys.executable, "-m", "kpt_tf.evaluate", "--model", str(model), "--data",
                               str(embedded_records), "--json", str(out), "--out_mat", str(tmp_path / f"{name}.mat")],
                              cwd=REPO, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        results[name] = json.loads(out.read_text())
        assert "PCKh@0.5 by visibility" in done.stdout
    assert set(results["export"]["by_visibility"]) == {"visible", "occluded"}
    # The exported graph (flip test inside) and the workdir's Keras model (flip test in Python) agree.
    assert abs(results["export"]["hrnet"]["Mean"] - results["workdir"]["hrnet"]["Mean"]) < 1e-6
    from kpt_tf.mpii import load_predictions
    preds = load_predictions(tmp_path / "export.mat")
    assert preds.shape[1:] == (16, 2)


def test_black_and_dark_frames_are_ordinary_input(exported):
    """A black or dark video frame among others is served (one once failed the whole call as "a float image in
    [0, 1]?"); a request whose every image holds only 0 and 1 (what saved_model_cli makes of a float image, and
    what a black frame alone looks like) is refused."""
    plain, _, _ = exported
    loaded = tf.saved_model.load(str(plain))
    serve, by_centre = loaded.signatures["serving_default"], loaded.signatures["serve_center_scale"]
    rng = np.random.default_rng(5)
    black = np.zeros((1, 100, 100, 3), np.uint8)
    dark = rng.integers(0, 3, (1, 100, 100, 3)).astype(np.uint8)       # brightest 2
    bright = _image(100)
    box = [[10.0, 10.0, 60.0, 90.0]]
    out = serve(images=tf.constant(np.concatenate([black, dark, bright])),
                boxes=tf.constant(np.repeat(box, 3, axis=0).astype(np.float32)))
    assert np.all(np.isfinite(out["keypoints"].numpy()))
    out = serve(images=tf.constant(dark), boxes=tf.constant(np.float32(box)))      # a dark frame alone
    assert np.all(np.isfinite(out["keypoints"].numpy()))
    for alone in (black, np.minimum(dark, 1)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="float image in \\[0, 1\\] cast to uint8"):
            serve(images=tf.constant(alone), boxes=tf.constant(np.float32(box)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="scale makes the person box more than 4 times"):
        by_centre(images=tf.constant(bright), centers=tf.constant([[50.0, 50.0]]), scales=tf.constant([1e30]))


def test_a_coco17_network_trained_on_coco_records_exports_its_layout_and_is_rebuilt_in_it(tmp_path):
    """The layout travels from the records (their manifest) through training (config.json) into the export's
    metadata, and serving, `load_trained` and `read_weights` rebuild the heads' joints in it."""
    from kpt_tf import layouts
    from kpt_tf import workdir as wd
    from kpt_tf.data import manifest as mf
    from kpt_tf.export import export_workdir
    from kpt_tf.serving import load_savedmodel, serve_people
    from kpt_tf.trained import load_trained, read_weights
    from kpt_tf.training import loop
    from tests.conftest import tiny_train_config
    from tests.kpt_tf.data.test_pipeline import write_records

    coco17 = layouts.layout("coco17")
    records = tmp_path / "records"
    records.mkdir()
    write_records(records, "train", 8, 1, seed=0, layout=coco17)
    write_records(records, "val", 4, 1, seed=1, layout=coco17)
    (records / mf.MANIFEST_NAME).write_text(json.dumps(mf.build_manifest({}, {}, {}, {}, True, layout="coco17")))
    run = tmp_path / "run"
    loop.train(tiny_train_config(records, joints="all-head", epochs=1, steps=2, stacks=1), run, verbose=0)
    assert json.loads((run / wd.CONFIG).read_text())["joints"] == "coco17:all-head"
    limbs = load_trained(run).joints
    assert limbs.layout is coco17 and limbs.names == coco17.joints[5:]

    out = export_workdir(run, tmp_path / "export", options=ExportOptions(flip_test=True))
    metadata = json.loads((out / wd.EXPORT_METADATA).read_text())
    assert metadata["layout"] == "coco17" and metadata["joints"] == list(coco17.joints[5:])
    assert metadata["flip_test"] is True                   # COCO's flip pairs close the limbs
    _, served_joints, _ = load_savedmodel(out)
    for joints in (served_joints, load_trained(out).joints, read_weights(out).joints):
        assert joints.layout is coco17 and joints.names == limbs.names
    served = serve_people(out, _image(96)[0], [[48.0, 48.0]], [0.3])
    assert served["keypoints"].shape == (1, 12, 2) and served["subset"].layout is coco17

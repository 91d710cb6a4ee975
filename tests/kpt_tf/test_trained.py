"""Loading trained models (kpt_tf/trained.py): one loader for a workdir, a .keras file and a SavedModel."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from kpt_tf import workdir as wd
from kpt_tf.joints import JointSubset
from kpt_tf.models import build_net
from kpt_tf.models.weights import weights_by_name
from kpt_tf.trained import load_trained, net_from_saved


@pytest.mark.slow
def test_load_trained_from_workdir_keras_file_and_savedmodel(trained_workdir, exported_savedmodel):
    from_dir = load_trained(trained_workdir)
    from_file = load_trained(trained_workdir / wd.BEST_MODEL)
    exported = load_trained(exported_savedmodel)
    assert from_dir.joints.names == from_file.joints.names == exported.joints.names
    assert from_dir.codec() == from_file.codec() == exported.codec()
    assert (exported.kind, from_dir.kind) == ("SavedModel", ".keras model")
    weights = from_dir.weights()
    assert weights.keys() == exported.weights().keys()
    for name in ("stem_conv/kernel", "head1/bias"):
        np.testing.assert_allclose(exported.weights()[name], weights[name])
    crops = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(exported.heatmaps_fn()(crops).numpy(),
                               from_dir.heatmaps_fn(flip_test=False)(crops).numpy(), atol=1e-5)
    metadata = wd.ExportMetadata.read(exported_savedmodel)
    assert metadata.architecture == "hourglass" and metadata.flip_test is False


def test_load_trained_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_trained(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a SavedModel"):
        load_trained(tmp_path / "notes.txt")
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_trained(tmp_path / "run")


@pytest.mark.slow
def test_net_from_saved_rebuilds_weights_and_trainable_flags(tmp_path):
    keras.utils.set_random_seed(3)
    saved = build_net(_tiny(), JointSubset.parse("all"))
    saved.get_layer("stem_conv").trainable = False
    saved.save(tmp_path / "init.keras")
    rebuilt = net_from_saved(_tiny(), JointSubset.parse("all"), False, tmp_path / "init.keras")
    for name, value in weights_by_name(saved).items():
        np.testing.assert_array_equal(weights_by_name(rebuilt)[name], value)
    assert not rebuilt.get_layer("stem_conv").trainable and rebuilt.get_layer("head0").trainable
    with pytest.raises(ValueError, match="does not match"):
        net_from_saved(_tiny(stacks=1), JointSubset.parse("all"), False, tmp_path / "init.keras")


def _tiny(stacks=2):
    from configs.base import base_config

    c = base_config()
    c.model.num_stacks, c.model.channels, c.model.depth, c.model.input_size = stacks, 16, 1, 64
    return c


def test_export_metadata_rebuilds_the_joints_in_its_layout_and_an_older_export_is_mpii16():
    from kpt_tf import layouts

    upper = JointSubset.parse("upper")
    older = {"format": "savedmodel", "flip_test": True, "joints": list(upper.names), "input_size": 64,
             "heatmap_size": 16, "sigma": 2.0, "architecture": "hourglass"}     # written before layouts
    metadata = wd.ExportMetadata.from_json(json.dumps(older))
    assert metadata.layout == "mpii16" and metadata.joint_subset().indices == upper.indices
    coco = wd.ExportMetadata.from_json(json.dumps(dict(older, joints=["nose", "left_eye"], layout="coco17")))
    assert coco.joint_subset() == JointSubset.from_names(["nose", "left_eye"], layouts.layout("coco17"))
    assert json.loads(coco.to_json())["layout"] == "coco17"
    # The names are read in the recorded layout only: COCO's nose is no MPII joint.
    with pytest.raises(ValueError, match="saved joints 'nose' are not joints of layout mpii16"):
        wd.ExportMetadata.from_json(json.dumps(dict(older, joints=["nose"]))).joint_subset()

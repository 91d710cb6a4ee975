"""The workdir/export layout (kpt_tf/workdir.py): one loader for a workdir, a .keras file and a SavedModel."""

from __future__ import annotations

import numpy as np
import pytest

from kpt_tf import workdir as wd


def test_config_round_trip_and_missing_config(tmp_path):
    from configs.base import base_config

    config = base_config()
    config.joints = "upper"
    wd.save_config(config, tmp_path)
    assert wd.load_config(tmp_path).joints == "upper"
    with pytest.raises(FileNotFoundError, match="config.json"):
        wd.load_config(tmp_path / "elsewhere")


@pytest.mark.slow
def test_load_trained_from_workdir_keras_file_and_savedmodel(trained_workdir, tmp_path):
    from kpt_tf.export import export_workdir

    from_dir = wd.load_trained(trained_workdir)
    from_file = wd.load_trained(trained_workdir / wd.BEST_MODEL)
    exported = wd.load_trained(export_workdir(trained_workdir, tmp_path / "sm", flip_test=False))
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
    metadata = wd.ExportMetadata.read(tmp_path / "sm")
    assert metadata.architecture == "hourglass" and metadata.flip_test is False


def test_load_trained_refuses_what_it_cannot_read(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        wd.load_trained(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a SavedModel"):
        wd.load_trained(tmp_path / "notes.txt")
    (tmp_path / "run").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json"):
        wd.load_trained(tmp_path / "run")

"""Workdirs prepared by kpt_tf.transfer and kpt_tf.import_checkpoint: their --out never takes someone else's
directory, and training in them continues from the weights they hold, saying so first."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kpt_tf import workdir as wd
from kpt_tf.trained import load_trained
from tests.conftest import tiny_train_config


def _import_small_bearpaw(tmp_path, out):
    from kpt_tf.import_checkpoint import import_checkpoint
    from kpt_tf.interop.torch_hourglass import HourglassNet, randomised, save_bearpaw_checkpoint

    path = tmp_path / "hg.pth.tar"
    save_bearpaw_checkpoint(randomised(HourglassNet(1, 1, 16, channels=32, stem_widths=(8, 16)), seed=2), path)
    import_checkpoint(path, out, input_size=64)
    return path


@pytest.mark.slow
def test_transfer_and_import_refuse_an_out_that_holds_someone_elses_work(trained_workdir, exported_savedmodel,
                                                                         embedded_records, tmp_path):
    from kpt_tf.transfer import transfer_to_workdir

    target = tiny_train_config(embedded_records, joints="lower")
    before = sorted(p.name for p in trained_workdir.iterdir())
    config_before = (trained_workdir / wd.CONFIG).read_text()
    with pytest.raises(ValueError, match="holds a finished training run"):
        transfer_to_workdir(trained_workdir, target, trained_workdir, map_heads=True, verbose=False)
    assert sorted(p.name for p in trained_workdir.iterdir()) == before
    assert (trained_workdir / wd.CONFIG).read_text() == config_before
    export = exported_savedmodel
    with pytest.raises(ValueError, match="holds an exported SavedModel"):
        transfer_to_workdir(trained_workdir, target, export, map_heads=True, verbose=False)
    with pytest.raises(ValueError, match="holds TFRecords"):
        _import_small_bearpaw(tmp_path, embedded_records)
    assert not list(embedded_records.glob("*.keras"))
    # The same command again writes its own output again; another source's output is refused.
    transfer_to_workdir(trained_workdir, target, tmp_path / "lower", map_heads=True, verbose=False)
    transfer_to_workdir(trained_workdir, target, tmp_path / "lower", map_heads=True, verbose=False)
    with pytest.raises(ValueError, match="output of another source"):
        transfer_to_workdir(export, target, tmp_path / "lower", map_heads=True, verbose=False)


@pytest.mark.slow
def test_training_in_an_imported_workdir_continues_from_the_imported_weights(embedded_records, tmp_path, capsys):
    from kpt_tf.interop.bearpaw import MPII_MEAN_RGB
    from kpt_tf.training import loop

    run = tmp_path / "imported"
    _import_small_bearpaw(tmp_path, run)
    imported = load_trained(run).weights()
    config = tiny_train_config(embedded_records, epochs=1, steps=1, channels=32, stacks=1, depth=4)
    config.model.stem = "scaled"        # the imported network's (8, 16 wide at 32 features)
    with pytest.raises(ValueError, match="prepared by kpt_tf.import_checkpoint for another network: the config "
                                         "differs in model.input_mean"):
        loop.train(config, run, verbose=0)
    assert json.loads((run / wd.CONFIG).read_text())["name"].startswith("bearpaw")      # nothing replaced
    config.model.input_mean = MPII_MEAN_RGB
    config.train.learning_rate = 1e-7
    capsys.readouterr()
    loop.train(config, run, verbose=1)
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"{run}: training continues from best.keras, written by kpt_tf.import_checkpoint"
    trained = load_trained(run).weights()
    kernel = "stem_conv/kernel"
    # one step at 1e-7 from the imported weights: still them (random initialisation would be far away)
    assert float(np.abs(trained[kernel] - imported[kernel]).max()) < 1e-4 * float(np.abs(imported[kernel]).max())

"""Every config under configs/ builds its network (what `kpt_tf.train --dry_run` does), with the sizes recorded
in the config docstrings and BUILD_NOTES where they are stated."""

from __future__ import annotations

import importlib

import keras
import pytest

from kpt_tf.joints import JointSubset
from kpt_tf.models import build_net, resolve_config
from kpt_tf.models.weights import trainable_parameter_count
from tests.conftest import REPO

CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("*.py") if p.stem not in ("__init__", "base")
                 and not p.stem.startswith("kptransfer_base"))
KNOWN_PARAMS = {"fpd_student_4x128": 3_287_936, "pbn_hg_mpii": 27_360_640, "fpd_demo": 112_944,
                "pbn_embedded": 499_840}


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds(name):
    config = importlib.import_module(f"configs.{name}").get_config()
    keras.backend.clear_session()
    net = build_net(resolve_config(config), JointSubset.parse(config.joints))
    params = trainable_parameter_count(net)
    assert params > 0
    if name in KNOWN_PARAMS:
        assert params == KNOWN_PARAMS[name]
    if name == "coco_embedded":                 # COCO's 17 heads before any record exists
        assert net.outputs[-1].shape[-1] == 17

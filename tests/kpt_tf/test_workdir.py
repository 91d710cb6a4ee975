"""The workdir layout (kpt_tf/workdir.py): config I/O."""

from __future__ import annotations

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

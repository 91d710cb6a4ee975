"""The PBN experiment end to end (--quick): its own groupings, two PBNs and a parameter-matched hourglass."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_pbn_against_a_matched_hourglass_runs_end_to_end_with_quick(embedded_records, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "kpt_tf.experiments.pbn", "--config", "configs/pbn_embedded.py",
         f"--config.data.dir={embedded_records}", "--quick",
         # the smallest networks and one epoch still run every arm and the report
         "--config.quick.depth=1", "--config.quick.epochs=1", "--workdir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["arms"]) == ["pbn_mi", "pbn_body", "hourglass"]
    sizes = results["parameters"]
    assert abs(sizes["hourglass"] - sizes["pbn_mi"]) <= 0.03 * sizes["pbn_mi"]
    assert results["hourglass_shape"][0] == 2                      # 1 trunk + 1 branch stack
    assert results["groups"]["body"]["method"] == "body" and len(results["groups"]["mi"]["groups"]) == 3
    for arm in results["arms"].values():
        assert {"final_visible", "final_occluded"} <= set(arm)
    saved = json.loads((tmp_path / "pbn_mi" / "seed0" / "config.json").read_text())
    assert [g["joints"] for g in saved["model"]["groups"]] == results["groups"]["mi"]["groups"]
    table = (tmp_path / "results.md").read_text()
    assert "pbn_mi - hourglass" in table and "occluded joints" in table
    assert (tmp_path / "groups_mi" / "mi.png").is_file()

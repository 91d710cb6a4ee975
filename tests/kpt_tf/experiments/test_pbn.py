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


def test_the_matched_hourglass_is_the_closest_even_width_found_with_few_builds(monkeypatch):
    """The width search builds a handful of networks (each build costs about a second), and what it returns is the
    even width whose count is closest to the PBN's: both neighbours are farther (the counts grow with the width)."""
    from configs.pbn_embedded import get_config
    from kpt_tf.experiments import pbn

    config = pbn.apply_quick(get_config())
    config.model.depth = 1
    target = pbn.trainable_params(config)
    built = []
    count_params = pbn.trainable_params
    monkeypatch.setattr(pbn, "trainable_params", lambda c: built.append(int(c.model.channels)) or count_params(c))
    hourglass, count = pbn.matched_hourglass(config, target, 0.03)
    width = int(hourglass.model.channels)
    assert hourglass.model.num_stacks == 2 and width % 2 == 0 and count == count_params(hourglass)
    assert len(built) <= 6, built
    for neighbour in (width - 2, width + 2):
        hourglass.model.channels = neighbour
        assert abs(count_params(hourglass) - target) >= abs(count - target), (neighbour, width, built)

"""Carrying finished runs of an experiment between machine sessions (bench/kptransfer.py --carry)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kpt_tf import workdir as wd
from kpt_tf.experiments.kptransfer import _step_dir, feeds_a_later_step
from kpt_tf.experiments.runs import carry_finished_runs


def _finished_run(directory: Path, marker: str, finished: bool = True) -> Path:
    directory.mkdir(parents=True)
    for name in (wd.CONFIG, wd.METRICS_CSV, wd.BEST_MODEL, wd.FINAL_MODEL):
        (directory / name).write_text(f"{marker} {name}")
    if finished:
        (directory / wd.TRAIN_SUMMARY).write_text(json.dumps({"run": marker}))
    return directory


def test_finished_runs_and_only_the_sources_networks_are_carried_and_nothing_twice(tmp_path):
    session_1 = tmp_path / "session_1"
    source = _finished_run(_step_dir(session_1, 0, "all"), "source")
    random_0 = _finished_run(_step_dir(session_1, 1, "all") / "random" / "seed0", "random0")
    _finished_run(_step_dir(session_1, 1, "all") / "transfer" / "seed0", "transfer0", finished=False)   # stopped
    carried = tmp_path / "carried"

    def with_network(run):
        return feeds_a_later_step(run, num_steps=2)

    assert carry_finished_runs(session_1, carried, with_network) == ["step0_all", "step1_all/random/seed0"]
    for run, network in ((source, True), (random_0, False)):
        kept = carried / run.relative_to(session_1)
        assert sorted(p.name for p in kept.iterdir()) == sorted(
            [wd.CONFIG, wd.METRICS_CSV, wd.TRAIN_SUMMARY] + ([wd.BEST_MODEL] if network else []))
        assert (kept / wd.TRAIN_SUMMARY).read_text() == (run / wd.TRAIN_SUMMARY).read_text()
    assert not (carried / "step1_all" / "transfer").exists()

    # The next session: the carried runs are finished there (skipped by train_once), the source's network is where
    # the transfer arm looks for it, and carrying again copies nothing already there.
    session_2 = tmp_path / "session_2"
    assert carry_finished_runs(carried, session_2, with_network) == ["step0_all", "step1_all/random/seed0"]
    assert wd.is_finished(session_2 / "step0_all") and wd.is_finished(session_2 / "step1_all/random/seed0")
    assert (session_2 / "step0_all" / wd.BEST_MODEL).read_text() == f"source {wd.BEST_MODEL}"
    assert carry_finished_runs(carried, session_2, with_network) == []
    assert carry_finished_runs(session_2, carried, with_network) == []


def test_a_finished_run_missing_a_file_it_must_carry_is_named(tmp_path):
    source = _finished_run(_step_dir(tmp_path / "runs", 0, "upper"), "source")
    (source / wd.BEST_MODEL).unlink()
    with pytest.raises(FileNotFoundError, match=f"step0_upper lacks {wd.BEST_MODEL}"):
        carry_finished_runs(tmp_path / "runs", tmp_path / "carried", lambda run: feeds_a_later_step(run, 2))
    assert not (tmp_path / "carried" / "step0_upper" / wd.TRAIN_SUMMARY).exists()


def test_only_steps_before_the_last_feed_a_later_step():
    assert feeds_a_later_step(Path("step0_upper"), 2) and not feeds_a_later_step(Path("step1_lower/random/seed0"), 2)
    assert feeds_a_later_step(Path("step1_b/transfer/seed2"), 3) and not feeds_a_later_step(Path("step2_c"), 3)
    assert not feeds_a_later_step(Path("groups_mi"), 2) and not feeds_a_later_step(Path("stepx_a"), 2)

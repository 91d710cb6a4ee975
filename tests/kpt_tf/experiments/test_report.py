"""The arms report's flatness figure (issue 8: a converged baseline gains < 2 points over its last fifth)."""

from __future__ import annotations

import pytest

from kpt_tf.experiments.report import last_fifth_gain


def test_last_fifth_gain_compares_the_last_epoch_with_the_one_a_fifth_earlier():
    curve = list(range(28))                      # epoch e scores e - 1
    assert last_fifth_gain(curve) == pytest.approx(6.0)   # 28 epochs: epoch 28 minus epoch 22
    assert last_fifth_gain([10.0, 10.0, 10.0, 10.0, 10.5]) == pytest.approx(0.5)
    assert last_fifth_gain([3.0, 1.0]) == pytest.approx(-2.0)
    assert last_fifth_gain([5.0]) is None


def test_the_stricter_column_is_reported_only_where_the_layout_quotes_one():
    """MPII's tables carry Mean@0.1 (PCKh@0.1); a COCO target's person-box PCK has no quoted @0.1 figure."""
    from kpt_tf.experiments.report import markdown_table, summarise_arms
    from kpt_tf.layouts import layout
    from kpt_tf.training.history import EpochScores

    def run(score):
        return {"seconds": 10.0, "history": [EpochScores(epoch=e, seconds=5.0 * e, mean=score + e, mean_01=score / 4,
                                                         per_joint={"left_wrist": score}, per_joint_01={
                                                             "left_wrist": score / 4}).to_dict() for e in (1, 2)]}

    runs = {"random": {0: run(40.0)}, "transfer": {0: run(50.0)}}
    for name, quoted in (("mpii16", True), ("coco17", False)):
        table = markdown_table(summarise_arms(runs, metric=layout(name).pck_label, baseline="random"), "t")
        assert ("| arm | Mean@0.1 | gain over" if quoted else "| arm | gain over") in table, table
        assert ("| transfer | 12.50 |" in table) == quoted, table

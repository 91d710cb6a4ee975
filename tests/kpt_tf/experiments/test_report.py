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

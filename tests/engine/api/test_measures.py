"""Metrics as people read them: percentages with rows and Wilson intervals, losses with a
unit, and differences weighed against the noise on their rows."""

from __future__ import annotations

import math

import pytest

from engine.api.measures import (
    difference_text,
    headline_metric,
    interval,
    metric_text,
    value_text,
    wilson,
)


@pytest.mark.parametrize(("share", "n", "low", "high"), [
    (0.8, 10, 0.4902, 0.9433),   # Wilson's score interval, as statsmodels gives it
    (0.5, 100, 0.4038, 0.5962),
    (1.0, 6, 0.6097, 1.0),
    (0.0, 20, 0.0, 0.1611)])
def test_wilson_interval_matches_the_textbook_values(share, n, low, high):
    lo, hi = wilson(share, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)


def test_an_interval_only_where_a_closed_form_holds():
    assert interval("accuracy", 0.9, 50) is not None
    assert interval("exact_match", 0.2, 50) is not None
    assert interval("macro_f1", 0.9, 50) is None and interval("eval_loss", 0.4, 50) is None
    assert interval("accuracy", 0.9, None) is None and interval("accuracy", 0.9, 0) is None


def test_metrics_read_as_percentages_with_rows_or_as_a_loss_with_its_unit():
    assert metric_text("accuracy", 0.873, 300) == "accuracy 87.3 % (95 % CI 83.1–90.6 %, 300 rows)"
    assert metric_text("macro_f1", 0.8, 1200) == "macro F1 80.0 % (1,200 rows)"
    assert metric_text("eval_loss", 0.41234, 40) == "eval loss 0.4123 nats/token (40 rows)"
    assert metric_text("accuracy", None, 10) == "accuracy not measured"
    assert value_text("rouge_l", 0.25) == "25.0 %" and value_text("accuracy", math.nan) == (
        "not measured")


def test_a_difference_says_whether_it_is_more_than_the_noise():
    assert difference_text("accuracy", 0.80, 300, 0.87, 300) == (
        "+7.0 points, more than the noise on these rows (±5.9 points)")
    assert difference_text("accuracy", 0.80, 30, 0.87, 30).startswith(
        "+7.0 points, within the noise on these rows")
    assert difference_text("eval_loss", 0.5, 30, 0.4, 30) == (
        "-0.1 nats/token (no noise estimate for eval loss)")


def test_a_versions_headline_is_its_own_metric_and_says_when_it_is_on_training_rows():
    trained = {"metric_name": "accuracy", "best_metric": 0.75, "eval_n": 4,
               "eval_on": "held-out rows", "eval_loss": 0.3}
    assert headline_metric(trained).startswith("accuracy 75.0 % (95 % CI")
    on_train = {"metric_name": "eval_loss", "best_metric": 0.2, "eval_n": 40,
                "eval_on": "training rows"}
    assert headline_metric(on_train) == (
        "eval loss 0.2 nats/token (40 rows), on its own training rows")
    assert headline_metric({"rouge_l": 0.5}) == "ROUGE-L 50.0 %"
    assert headline_metric({"notes": "x"}) == ""

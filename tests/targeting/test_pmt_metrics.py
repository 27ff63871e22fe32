"""Targeting and fit metrics against small hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from targeting.calibration import eligibility_changes
from targeting.calibration.metrics import (
    evaluate,
    select_poorest,
    targeting_errors,
    weighted_quantile,
    weighted_r2,
    weighted_ranks,
    weighted_spearman,
)

# Five households: predicted score, population weight, truly poor.
PRED = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
W = np.array([2.0, 1.0, 3.0, 2.0, 2.0])  # 10 people
POOR = np.array([True, False, True, False, False])  # 5 poor people


def test_selection_takes_the_smallest_prefix_reaching_the_coverage():
    # Population ranked before each household: 0, 2, 3, 6, 8 (of 10).
    assert select_poorest(PRED, W, 0.30).tolist() == [True, True, False, False, False]
    assert select_poorest(PRED, W, 0.35).tolist() == [True, True, True, False, False]
    # Order of the input does not matter, only the predicted values.
    order = np.array([3, 0, 4, 1, 2])
    assert select_poorest(PRED[order], W[order], 0.35).tolist() == [False, True, False, True, True]


def test_exclusion_inclusion_and_cgh_by_hand():
    at_30 = targeting_errors(POOR, select_poorest(PRED, W, 0.30), W)
    # Selected: 3 people (2 poor); poor: 5 people, 3 of them missed.
    assert at_30["coverage"] == pytest.approx(0.3)
    assert at_30["poverty_rate"] == pytest.approx(0.5)
    assert at_30["exclusion_error"] == pytest.approx(3 / 5)
    assert at_30["inclusion_error"] == pytest.approx(1 / 3)
    assert at_30["cgh"] == pytest.approx((2 / 3) / 0.5)
    at_35 = targeting_errors(POOR, select_poorest(PRED, W, 0.35), W)
    # Selected: 6 people, all 5 poor among them.
    assert at_35["coverage"] == pytest.approx(0.6)
    assert at_35["exclusion_error"] == 0
    assert at_35["inclusion_error"] == pytest.approx(1 / 6)
    assert at_35["cgh"] == pytest.approx((5 / 6) / 0.5)


def test_empty_denominators_give_none_not_nan():
    nobody = np.zeros(5, dtype=bool)
    errors = targeting_errors(nobody, nobody, W)
    assert errors["exclusion_error"] is None and errors["inclusion_error"] is None and errors["cgh"] is None


def test_weighted_r2_by_hand():
    y, pred, w = np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 3.0]), np.array([1.0, 1.0, 2.0])
    # Weighted mean 2.25; total SS = 1.5625 + 0.0625 + 2 * 0.5625 = 2.75; residual SS = 1.
    assert weighted_r2(y, pred, w) == pytest.approx(1 - 1 / 2.75)


def test_spearman_equals_scipy_with_equal_weights_and_replication_with_integer_weights():
    rng = np.random.default_rng(3)
    y = rng.normal(size=50)
    pred = y + rng.normal(size=50)
    pred[:5] = pred[5]  # ties
    assert weighted_spearman(y, pred, np.ones(50)) == pytest.approx(spearmanr(y, pred).statistic)
    counts = rng.integers(1, 4, 50)
    expanded = spearmanr(np.repeat(y, counts), np.repeat(pred, counts)).statistic
    assert weighted_spearman(y, pred, counts.astype(float)) == pytest.approx(expanded)
    assert weighted_ranks(np.array([5.0, 1.0, 5.0]), np.array([1.0, 2.0, 1.0])).tolist() == [3.0, 1.0, 3.0]


def test_metrics_with_integer_weights_equal_metrics_on_replicated_rows():
    rng = np.random.default_rng(4)
    n = 40
    y = rng.normal(size=n)
    pred = y + rng.normal(size=n)
    counts = rng.integers(1, 5, n)
    poor = y < np.quantile(y, 0.3)
    weighted = evaluate(y, pred, counts.astype(float), poor, {"c": 0.25})["overall"]
    rep = np.repeat(np.arange(n), counts)
    replicated = evaluate(y[rep], pred[rep], np.ones(len(rep)), poor[rep], {"c": 0.25})["overall"]
    assert weighted["r2"] == pytest.approx(replicated["r2"])
    # The selection boundary may split a replicated household, so compare away from it.
    assert weighted["targeting"]["c"]["poverty_rate"] == pytest.approx(replicated["targeting"]["c"]["poverty_rate"])


def test_poverty_line_from_a_rate():
    x = np.array([40.0, 10.0, 30.0, 20.0])
    assert weighted_quantile(x, np.ones(4), 0.5) == 25.0  # households at 10 and 20 are below it: 50%
    assert weighted_quantile(x, np.array([1.0, 1.0, 1.0, 3.0]), 0.5) == 25.0  # 10 and 20 hold 4 of 6 people
    assert weighted_quantile(x, np.ones(4), 0.99) > 40.0


def test_group_tables_measure_errors_inside_each_group_with_national_selection():
    groups = {"female_headed": np.array(["yes", "no", "no", "yes", None], dtype=object)}
    result = evaluate(np.log(PRED), np.log(PRED), W, POOR, {"30%": 0.3}, groups)
    yes = result["by_group"]["female_headed"]["yes"]["targeting"]["30%"]
    # Female-headed: households 1 (poor, selected) and 4 (not poor, not selected).
    assert yes["exclusion_error"] == 0 and yes["inclusion_error"] == 0 and yes["coverage"] == pytest.approx(0.5)
    assert result["by_group"]["female_headed"]["no"]["n_households"] == 2  # None is in no level


def test_eligibility_changes():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    b = np.array([2.0, 1.0, 5.0, 3.0, 4.0])
    changes = eligibility_changes(a, b, 0.4)
    assert changes == {
        "coverage": 0.4,
        "households": 5,
        "selected_a": 2,
        "selected_b": 2,
        "entering": 0,
        "leaving": 0,
        "staying": 2,
    }
    changes = eligibility_changes(a, b, 0.6)  # a picks 1,2,3; b picks 1,2,4
    assert (changes["entering"], changes["leaving"], changes["staying"]) == (1, 1, 2)
    weighted = eligibility_changes(a, b, 0.3, weights=np.array([1.0, 1.0, 1.0, 1.0, 6.0]))
    assert weighted["selected_a"] == 3 and weighted["population_share"]["staying"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="differ in length"):
        eligibility_changes(a, b[:3], 0.2)

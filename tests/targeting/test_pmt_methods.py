"""Estimation methods against reference implementations and brute force."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from sklearn.linear_model import QuantileRegressor

from targeting.calibration.methods import (
    degenerate_columns,
    fit_lasso,
    fit_quantile,
    fit_stepwise,
    fit_wls,
)


def _data(n=400, p=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    X[:, -1] = rng.random(n) < 0.3
    beta = np.array([0.5, -0.3, 0.0, 0.2, 0.0, 0.25])[:p]
    y = 1.0 + X @ beta + rng.standard_t(4, size=n) * 0.4
    w = rng.uniform(0.5, 4.0, n)
    folds = rng.permutation(n) % 5
    return X, y, w, folds


def test_wls_and_hc1_standard_errors_match_statsmodels():
    X, y, w, _ = _data()
    ours = fit_wls(X, y, w)
    reference = sm.WLS(y, sm.add_constant(X), weights=w).fit(cov_type="HC1")
    np.testing.assert_allclose(np.r_[ours.intercept, ours.coef], reference.params, rtol=1e-10)
    np.testing.assert_allclose(np.r_[ours.intercept_se, ours.std_errors], reference.bse, rtol=1e-8)


def test_quantile_regression_is_exact_and_weights_equal_replication():
    X, y, w, _ = _data(n=300)
    ours = fit_quantile(X, y, w, 0.3)
    reference = QuantileRegressor(quantile=0.3, alpha=0.0, solver="highs").fit(X, y, sample_weight=w)

    def loss(intercept, coef):
        u = y - intercept - X @ coef
        return float(np.sum(w * u * (0.3 - (u < 0))))

    assert loss(ours.intercept, ours.coef) == pytest.approx(loss(reference.intercept_, reference.coef_), rel=1e-8)
    np.testing.assert_allclose(ours.coef, reference.coef_, atol=1e-5)
    assert ours.info["converged"]
    counts = np.random.default_rng(1).integers(1, 4, len(y))
    rep = np.repeat(np.arange(len(y)), counts)
    weighted = fit_quantile(X, y, counts.astype(float), 0.4)
    replicated = fit_quantile(X[rep], y[rep], np.ones(len(rep)), 0.4)
    np.testing.assert_allclose(weighted.coef, replicated.coef, atol=1e-5)


def test_quantile_standard_errors_agree_with_statsmodels_kernel_estimate():
    # Heteroskedastic, heavy-tailed errors: the case a sandwich estimate exists for. Bandwidth
    # and kernel differ slightly from statsmodels' (uniform vs Epanechnikov), hence the tolerance.
    rng = np.random.default_rng(1)
    n = 4000
    X = np.column_stack([rng.normal(size=n), rng.integers(0, 2, n)])
    y = 1 + 0.5 * X[:, 0] - 0.3 * X[:, 1] + rng.standard_t(5, size=n) * (1 + 0.3 * X[:, 1])
    ours = fit_quantile(X, y, np.ones(n), 0.3)
    reference = sm.QuantReg(y, sm.add_constant(X)).fit(q=0.3, vcov="robust", kernel="epa", bandwidth="hsheather")
    np.testing.assert_allclose([ours.intercept_se, *ours.std_errors], reference.bse, rtol=0.2)


def test_quantile_survives_a_column_that_is_constant_in_the_fold():
    X, y, w, _ = _data(n=200)
    X = np.column_stack([X, np.zeros(len(y)), X[:, 0] * 2])  # constant, and a copy of column 0
    model = fit_quantile(X, y, w, 0.5)
    assert model.coef[-2] == 0 and model.coef[-1] == 0 and np.isfinite(model.coef).all()


def test_stepwise_cv_error_equals_refitting_on_each_fold():
    X, y, w, folds = _data(n=500)
    model = fit_stepwise(X, y, w, folds)
    path = model.info["path"]

    def cv_mse(columns):
        sse = 0.0
        for g in range(5):
            train, test = folds != g, folds == g
            fit = fit_wls(X[train][:, columns], y[train], w[train], robust=False)
            sse += float(np.sum(w[test] * (y[test] - fit.predict(X[test][:, columns])) ** 2))
        return sse / w.sum()

    chosen: list[int] = []
    assert path[0]["cv_mse"] == pytest.approx(cv_mse(chosen), rel=1e-6)
    for step in path[1:]:
        chosen.append(step["added"])
        assert step["cv_mse"] == pytest.approx(cv_mse(chosen), rel=1e-6)
        # The chosen column is the best single addition at that step.
        others = [j for j in range(X.shape[1]) if j not in chosen]
        assert all(step["cv_mse"] <= cv_mse(chosen[:-1] + [j]) * (1 + 1e-9) for j in others)
    assert {0, 1} <= set(model.info["selected"])  # the two strongest effects
    reference = fit_wls(X[:, model.info["selected"]], y, w)
    np.testing.assert_allclose(model.coef[model.info["selected"]], reference.coef)


def test_stepwise_keeps_forced_columns():
    X, y, w, folds = _data(n=300)
    model = fit_stepwise(X, y, w, folds, forced=(2,))
    assert 2 in model.info["selected"]


def test_lasso_coefficients_are_on_the_original_scale():
    X, y, w, folds = _data(n=600)
    X = X * np.array([1.0, 100.0, 1.0, 0.01, 1.0, 1.0])  # wildly different scales
    model = fit_lasso(X, y, w, folds, seed=0)
    ols = fit_wls(X, y, w)
    # With 600 observations and strong signals the penalty is small: close to WLS on the original scale.
    np.testing.assert_allclose(model.coef[[0, 1, 3]], ols.coef[[0, 1, 3]], rtol=0.15)
    assert abs(model.predict(X) - ols.predict(X)).mean() < 0.05
    forced = fit_lasso(X, y, w, folds, seed=0, forced=(5,))
    assert forced.coef[5] != 0


def test_degenerate_columns_are_named_with_their_reason():
    X, y, w, _ = _data(n=100, p=3)
    X = np.column_stack([X, np.full(100, 2.0), X[:, 0] + 3 * X[:, 2]])
    names = ["a", "b", "c", "const", "combo"]
    assert degenerate_columns(X, w, names) == {
        "const": "constant (2 for every household)",
        "combo": "collinear with c, a",
    }

"""Estimation methods for the PMT, on plain arrays (one stratum, or the pooled sample).

Every method fits log per-capita consumption ``y`` on a design ``X`` (n x p, no intercept
column) with population weights ``w``, and returns a model with ``predict(X)``. The linear
ones return a :class:`LinearModel` (intercept + coefficients on the original feature scale),
which is what a scorecard publishes. ``folds`` are the fold labels of the rows being fitted:
methods that tune something (stepwise, lasso) cross-validate inside them, so that when the
caller fits on k-1 outer folds the tuning never sees the held-out fold (nested CV).

* ``wls``: weighted least squares (lstsq on sqrt(w)-scaled data), HC1 robust standard errors.
* ``stepwise``: forward selection by k-fold cross-validated weighted MSE, computed in closed
  form from per-fold weighted Gram matrices of the standardised design (cost independent of
  n once the Grams exist); stops when no candidate lowers the CV error; refits by WLS.
* ``lasso``: sklearn ``LassoCV`` with ``sample_weight`` on weighted-standardised features,
  coefficients mapped back to the original scale.
* ``quantile``: weighted linear quantile regression at ``tau``, solved exactly by the
  Frisch-Newton interior-point method (Portnoy & Koenker 1997, as in R ``quantreg``'s
  ``fn``); weights enter as the bounds of the dual problem, so no approximation is made.
  Standard errors: Powell kernel sandwich (``quantreg``'s ``se="ker"``).
* The lasso reports no standard errors: after data-driven selection the usual ones are not valid.
* ``gbm``: sklearn ``HistGradientBoostingRegressor`` with ``sample_weight``: a benchmark of
  what a flexible model could achieve, never published.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.linalg.blas import dsyrk

# Imported here rather than inside the functions: threadpoolctl can only limit the threads of
# native libraries (OpenMP) that are already loaded when calibrate() enters its limits.
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LassoCV
from threadpoolctl import threadpool_limits

#: Threads for BLAS and OpenMP while fitting. One: threads would wait on each other for matrices this
#: small, multi-threaded sums may depend on the thread count (reproducibility), and on a shared machine
#: OpenMP's spinning threads made gradient boosting 10-40x slower in our measurements.
THREADS = 1
#: |R_jj| of a unit-norm, weighted-centred column below this = linear combination of earlier ones.
COLLINEAR_TOL = 1e-6
#: Stepwise stops when the best candidate lowers CV MSE by less than this share.
STEPWISE_MIN_IMPROVEMENT = 1e-5
#: Relative ridge added to Gram matrices in stepwise CV solves, only to survive a fold in which a
#: rare dummy is all zero; far below any penalty that would change a coefficient visibly.
_GRAM_RIDGE = 1e-9
#: Penalties on LassoCV's path (log-spaced down to 1e-3 x the smallest penalty that zeroes everything).
LASSO_ALPHAS = 50
#: Gradient boosting settings: fixed (no early stopping, so no random validation split) and sized
#: so that the benchmark stays affordable (32 bins suffice: most PMT features are 0/1).
GBM_PARAMS = {"max_iter": 60, "learning_rate": 0.15, "max_leaf_nodes": 31, "min_samples_leaf": 40, "max_bins": 32}


@dataclass
class LinearModel:
    """Intercept and coefficients on the original feature scale (zero = not selected)."""

    intercept: float
    coef: np.ndarray
    std_errors: np.ndarray | None = None
    intercept_se: float | None = None
    info: dict = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.intercept + X @ self.coef


@dataclass
class _Standardiser:
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, w: np.ndarray) -> _Standardiser:
        mean = w @ X / w.sum()
        var = w @ (X - mean) ** 2 / w.sum()
        scale = np.sqrt(var)
        return cls(mean, np.where(scale > 0, scale, 1.0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale

    def back(self, intercept: float, coef: np.ndarray) -> tuple[float, np.ndarray]:
        """Map (intercept, coef) of standardised columns to the original scale."""
        original = coef / self.scale
        return float(intercept - original @ self.mean), original


def degenerate_columns(X: np.ndarray, w: np.ndarray, names: list[str]) -> dict[str, str]:
    """Columns to drop before fitting, with the reason: constant, or collinear with earlier columns.

    Deterministic: columns are examined in the given order and a column is dropped when it is
    (numerically) a linear combination of the intercept and the columns kept before it.
    """
    constant, collinear, kept = _column_status(X, w)
    dropped: dict[str, str] = {}
    for j in constant:
        value = X[w > 0][0, j] if (w > 0).any() else float("nan")
        dropped[names[j]] = f"constant ({value:g} for every household)"
    for j, partners in collinear.items():
        dropped[names[j]] = "collinear with " + ", ".join(names[k] for k in partners)
    return dict(sorted(dropped.items(), key=lambda item: names.index(item[0])))


def _column_status(X: np.ndarray, w: np.ndarray) -> tuple[list[int], dict[int, list[int]], list[int]]:
    """(constant columns, {collinear column: up to 3 main earlier partners}, kept columns)."""
    active = w > 0
    if not active.any():
        return list(range(X.shape[1])), {}, []
    Xa, wa = X[active], w[active]
    is_constant = np.ptp(Xa, axis=0) == 0
    constant = np.flatnonzero(is_constant).tolist()
    varying = np.flatnonzero(~is_constant)
    if len(varying) == 0:
        return constant, {}, []
    centred = (Xa[:, varying] - wa @ Xa[:, varying] / wa.sum()) * np.sqrt(wa)[:, None]
    centred /= np.linalg.norm(centred, axis=0)
    diag = np.abs(np.diag(np.linalg.qr(centred, mode="r")))
    kept_pos: list[int] = []
    collinear: dict[int, list[int]] = {}
    for position, j in enumerate(varying):
        if diag[position] < COLLINEAR_TOL:
            coef = np.linalg.lstsq(centred[:, kept_pos], centred[:, position], rcond=None)[0]
            order = np.argsort(-np.abs(coef))[:3]
            collinear[int(j)] = [int(varying[kept_pos[i]]) for i in order if abs(coef[i]) > 1e-6]
        else:
            kept_pos.append(position)
    return constant, collinear, [int(varying[p]) for p in kept_pos]


# --------------------------------------------------------------------------------------
# WLS
# --------------------------------------------------------------------------------------


def fit_wls(X: np.ndarray, y: np.ndarray, w: np.ndarray, robust: bool = True) -> LinearModel:
    """Weighted least squares with HC1 (heteroskedasticity-robust) standard errors.

    HC1 = n/(n-k) (X'WX)^-1 [sum w_i^2 e_i^2 x_i x_i'] (X'WX)^-1, k counting the intercept;
    the same as statsmodels ``WLS(...).fit(cov_type="HC1")``. Rank-deficient designs (a fold in
    which a rare dummy is constant) get the minimum-norm solution and no standard errors.
    """
    n = len(y)
    X1 = np.column_stack([np.ones(n), X])
    root = np.sqrt(w)
    beta, _, rank, _ = np.linalg.lstsq(X1 * root[:, None], y * root, rcond=None)
    model = LinearModel(float(beta[0]), beta[1:])
    k = X1.shape[1]
    if robust and rank == k and n > k:
        resid = y - X1 @ beta
        bread = np.linalg.inv((X1 * w[:, None]).T @ X1)
        meat_rows = X1 * (w * resid)[:, None]
        cov = bread @ (meat_rows.T @ meat_rows) @ bread * (n / (n - k))
        se = np.sqrt(np.clip(np.diag(cov), 0, None))
        model.intercept_se, model.std_errors = float(se[0]), se[1:]
    return model


# --------------------------------------------------------------------------------------
# Forward stepwise selection by closed-form cross-validated weighted MSE
# --------------------------------------------------------------------------------------


def fit_stepwise(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    folds: np.ndarray,
    forced: tuple[int, ...] = (),
    max_features: int | None = None,
) -> LinearModel:
    """Forward selection: add the feature that most lowers k-fold CV weighted MSE, until none does.

    ``forced`` columns (e.g. stratum intercepts of a pooled fit) are in from the start. For
    each fold g the Gram G_g = Z'W_gZ, b_g = Z'W_g y and yy_g = y'W_g y of the standardised
    design Z = [1, (X - mean)/sd] are computed once; the model trained without fold g solves
    (G - G_g) beta = b - b_g, and its squared error on fold g is yy_g - 2 beta'b_g +
    beta'G_g beta. Each step evaluates every candidate at once by bordering the current
    solution (block inverse / Schur complement), so a step costs O(k m^2 p), not O(n).
    The improvement threshold is :data:`STEPWISE_MIN_IMPROVEMENT`; ties go to the earlier column.
    """
    n, p = X.shape
    wn = w / w.mean()
    scaler = _Standardiser.fit(X, wn)
    Z = np.column_stack([np.ones(n), scaler.transform(X)])
    folds_data = []
    G = np.zeros((p + 1, p + 1))
    b = np.zeros(p + 1)
    for g in np.unique(folds):
        rows = folds == g
        Zg, wg, yg = Z[rows], wn[rows], y[rows]
        Gg = (Zg * wg[:, None]).T @ Zg
        bg = Zg.T @ (wg * yg)
        folds_data.append((Gg, bg, float(wg @ (yg * yg))))
        G += Gg
        b += bg
    total_w = float(wn.sum())
    ridge = _GRAM_RIDGE * total_w
    selected = [0] + [1 + j for j in forced]
    remaining = [j for j in range(1, p + 1) if j not in selected]

    def cv_mse(S: list[int], C: np.ndarray) -> tuple[float, np.ndarray]:
        """CV weighted MSE of the model S, and of S plus each single candidate in C."""
        sse_base, sse = 0.0, np.zeros(len(C))
        pen = np.full(len(S), ridge)
        pen[0] = 0.0  # the intercept is never shrunk
        for Gg, bg, yyg in folds_data:
            A, r = G - Gg, b - bg
            inv = np.linalg.inv(A[np.ix_(S, S)] + np.diag(pen))
            beta0 = inv @ r[S]
            G_SS = Gg[np.ix_(S, S)]
            sse_base += yyg - 2 * beta0 @ bg[S] + beta0 @ G_SS @ beta0
            if len(C) == 0:
                continue
            A_SC = A[np.ix_(S, C)]
            U = inv @ A_SC
            schur = A[C, C] + ridge - np.einsum("ij,ij->j", A_SC, U)
            beta_c = (r[C] - A_SC.T @ beta0) / schur
            B = beta0[:, None] - U * beta_c[None, :]
            linear = bg[S] @ B + bg[C] * beta_c
            quad = (
                np.einsum("ij,ij->j", B, G_SS @ B)
                + 2 * beta_c * np.einsum("ij,ij->j", Gg[np.ix_(S, C)], B)
                + beta_c**2 * Gg[C, C]
            )
            sse += yyg - 2 * linear + quad
        return sse_base / total_w, sse / total_w

    current, _ = cv_mse(selected, np.array([], dtype=int))
    path = [{"step": 0, "added": None, "cv_mse": float(current)}]
    limit = p if max_features is None else max_features
    while remaining and len(selected) - 1 - len(forced) < limit:
        _, errors = cv_mse(selected, np.array(remaining))
        best = int(np.argmin(errors))
        if not errors[best] < current * (1 - STEPWISE_MIN_IMPROVEMENT):
            break
        current = float(errors[best])
        selected.append(remaining.pop(best))
        path.append({"step": len(path), "added": selected[-1] - 1, "cv_mse": current})
    chosen = np.array(sorted(j - 1 for j in selected[1:]), dtype=int)
    sub = fit_wls(X[:, chosen], y, w)
    coef = np.zeros(p)
    coef[chosen] = sub.coef
    se = None
    if sub.std_errors is not None:
        se = np.full(p, np.nan)
        se[chosen] = sub.std_errors
    return LinearModel(sub.intercept, coef, se, sub.intercept_se, {"path": path, "selected": chosen.tolist()})


# --------------------------------------------------------------------------------------
# Lasso
# --------------------------------------------------------------------------------------


def fit_lasso(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, folds: np.ndarray, seed: int, forced: tuple[int, ...] = ()
) -> LinearModel:
    """Lasso with the penalty chosen by k-fold CV (sklearn ``LassoCV``, weighted).

    Features are standardised with weighted means and standard deviations so that the penalty
    treats them alike; coefficients are mapped back to the original scale. ``forced`` columns
    are left unpenalised by partialling them out first (exact for the lasso: for fixed slopes
    the optimal forced coefficients are their weighted LS fit on the remainder).
    """
    n, p = X.shape
    wn = w / w.mean()
    free = np.array([j for j in range(p) if j not in forced], dtype=int)
    forced_idx = np.array(forced, dtype=int)
    scaler = _Standardiser.fit(X[:, free], wn)
    Z = scaler.transform(X[:, free])
    target = y
    if len(forced_idx):
        D1 = np.column_stack([np.ones(n), X[:, forced_idx]])
        Z = Z - D1 @ _wls_solve(D1, Z, wn)
        target = y - D1 @ _wls_solve(D1, y, wn)
    splits = [(np.flatnonzero(folds != g), np.flatnonzero(folds == g)) for g in np.unique(folds)]
    lasso = LassoCV(alphas=LASSO_ALPHAS, cv=splits, max_iter=10000, random_state=seed, selection="cyclic")
    lasso.fit(Z, target, sample_weight=wn)
    intercept, coef_free = scaler.back(float(lasso.intercept_), lasso.coef_)
    coef = np.zeros(p)
    coef[free] = coef_free
    if len(forced_idx):
        D1 = np.column_stack([np.ones(n), X[:, forced_idx]])
        gamma = _wls_solve(D1, y - X[:, free] @ coef_free, wn)
        intercept = float(gamma[0])
        coef[forced_idx] = gamma[1:]
    return LinearModel(intercept, coef, info={"alpha": float(lasso.alpha_), "n_nonzero": int((coef != 0).sum())})


def _wls_solve(X1: np.ndarray, Y: np.ndarray, w: np.ndarray) -> np.ndarray:
    root = np.sqrt(w)
    scaled = Y * (root[:, None] if Y.ndim == 2 else root)
    return np.linalg.lstsq(X1 * root[:, None], scaled, rcond=None)[0]


# --------------------------------------------------------------------------------------
# Quantile regression (Frisch-Newton interior point)
# --------------------------------------------------------------------------------------


def fit_quantile(X: np.ndarray, y: np.ndarray, w: np.ndarray, tau: float) -> LinearModel:
    """Weighted linear quantile regression at quantile ``tau`` (exact; no weight approximation).

    Minimises sum w_i rho_tau(y_i - a - x_i'b) with rho_tau(u) = u (tau - 1[u < 0]).
    """
    n = len(y)
    wn = w / w.mean()
    scaler = _Standardiser.fit(X, wn)
    Z = np.column_stack([np.ones(n), scaler.transform(X)])
    # Inside a fold a rare dummy can be constant or duplicate another column; such columns would
    # make the Newton systems singular, so they are left out here (coefficient zero).
    kept = _column_status(X, wn)[2]
    active = np.zeros(Z.shape[1], dtype=bool)
    active[0] = True
    active[1 + np.array(kept, dtype=int)] = True
    beta = np.zeros(Z.shape[1])
    beta[active], iterations, converged = _rq_fnm(Z[:, active], y, wn, tau)
    intercept, coef = scaler.back(beta[0], beta[1:])
    model = LinearModel(intercept, coef, info={"tau": tau, "iterations": iterations, "converged": converged})
    X1 = np.column_stack([np.ones(n), X[:, kept]])
    se = _quantile_sandwich_se(X1, y - model.predict(X), wn, tau)
    if se is not None:
        model.intercept_se = float(se[0])
        model.std_errors = np.zeros(X.shape[1])
        model.std_errors[np.array(kept, dtype=int)] = se[1:]
    return model


def _rq_fnm(X: np.ndarray, y: np.ndarray, w: np.ndarray, tau: float, max_iter: int = 100, tol: float = 1e-10):
    """Frisch-Newton interior point for the dual of weighted quantile regression.

    Dual LP: max y'd subject to X'd = (1 - tau) X'w, 0 <= d <= w; the slopes are the
    (negated) multipliers of its equality constraints. Translated from Koenker's ``rq.fit.fnb``
    / ``lp_fnm`` with the unit upper bounds replaced by the weights.
    """
    n = len(y)
    Xf = np.asfortranarray(X)
    step_scale = 0.9995
    u = w
    x = (1.0 - tau) * w
    b = X.T @ x
    c = -y
    s = u - x
    dual = np.linalg.lstsq(X, c, rcond=None)[0]
    r = c - X @ dual
    r = r + 0.001 * (r == 0)
    z = np.where(r > 0, r, 0.0)
    v = z - r
    gap = c @ x - dual @ b + v @ u
    scale = max(1.0, abs(float(c @ x)))
    iterations = 0
    while gap > tol * scale and iterations < max_iter:
        iterations += 1
        q = 1.0 / (z / x + v / s)
        # Observations far from their interpolation point get q ~ 1e-300; subnormal floats make
        # BLAS crawl (10x slower per iteration), and their share of X'QX is nil anyway.
        q[q < 1e-150] = 0.0
        r = z - v
        # X'QX as a symmetric rank-k update on the Fortran-ordered design: half the flops of X.T @ (q X).
        AQA = dsyrk(1.0, Xf * np.sqrt(q)[:, None], trans=1)
        solve = _spd_solver(AQA)
        rhs = q * r
        dy = solve(X.T @ rhs)
        dx = q * (X @ dy - r)
        ds = -dx
        dz = -z * (dx / x + 1.0)
        dv = -v * (ds / s + 1.0)
        fp = min(step_scale * min(_bound(x, dx), _bound(s, ds)), 1.0)
        fd = min(step_scale * min(_bound(v, dv), _bound(z, dz)), 1.0)
        if min(fp, fd) < 1.0:
            mu = z @ x + v @ s
            g = (z + fd * dz) @ (x + fp * dx) + (v + fd * dv) @ (s + fp * ds)
            mu = mu * (g / mu) ** 3 / (2 * n)
            dxdz = dx * dz
            dsdv = ds * dv
            xinv = 1.0 / x
            sinv = 1.0 / s
            xi = mu * (xinv - sinv)
            rhs = rhs + q * (dxdz - dsdv - xi)
            dy = solve(X.T @ rhs)
            dx = q * (X @ dy + xi - r - dxdz + dsdv)
            ds = -dx
            dz = mu * xinv - z - xinv * z * dx - dxdz
            dv = mu * sinv - v - sinv * v * ds - dsdv
            fp = min(step_scale * min(_bound(x, dx), _bound(s, ds)), 1.0)
            fd = min(step_scale * min(_bound(v, dv), _bound(z, dz)), 1.0)
        x = x + fp * dx
        s = s + fp * ds
        dual = dual + fd * dy
        v = v + fd * dv
        z = z + fd * dz
        gap = c @ x - dual @ b + v @ u
    return -dual, iterations, bool(gap <= tol * scale)


def _spd_solver(A: np.ndarray):
    """A solve(b) for the symmetric positive semi-definite A, robust to lost definiteness.

    Near the optimum most Newton weights vanish and X'QX can lose definiteness numerically
    (seen on small pooled strata): Cholesky first, then Cholesky with a tiny ridge, then a
    least-squares solve, so that the interior point never aborts on rounding.
    """
    try:
        chol = cho_factor(A, lower=False, check_finite=False)
        return lambda b: cho_solve(chol, b, check_finite=False)
    except np.linalg.LinAlgError:
        pass
    jitter = 1e-10 * max(float(np.trace(A)) / len(A), 1e-300)
    try:
        chol = cho_factor(A + np.eye(len(A)) * jitter, lower=False, check_finite=False)
        return lambda b: cho_solve(chol, b, check_finite=False)
    except np.linalg.LinAlgError:
        return lambda b: np.linalg.lstsq(A, b, rcond=None)[0]


def _quantile_sandwich_se(X1: np.ndarray, resid: np.ndarray, w: np.ndarray, tau: float) -> np.ndarray | None:
    """Powell kernel sandwich standard errors for weighted quantile regression.

    Cov = H^-1 J H^-1 with J = tau (1 - tau) sum w_i^2 x_i x_i' and H = sum w_i f_i x_i x_i',
    f_i = 1[|e_i| < h] / 2h (uniform kernel), h the Hall-Sheather bandwidth in residual units as
    in R ``quantreg::summary.rq(se = "ker")``. Robust to heteroskedasticity; None when H is singular.
    """
    from scipy.stats import norm

    n = len(resid)
    alpha = 0.05
    z = norm.ppf(tau)
    bandwidth = (
        n ** (-1 / 3)
        * norm.ppf(1 - alpha / 2) ** (2 / 3)
        * ((1.5 * norm.pdf(z) ** 2) / (2 * z**2 + 1)) ** (1 / 3)
    )
    bandwidth = min(bandwidth, tau - 1e-6, 1 - tau - 1e-6)
    spread = min(float(np.std(resid)), float(np.subtract(*np.percentile(resid, [75, 25]))) / 1.34)
    h = (norm.ppf(tau + bandwidth) - norm.ppf(tau - bandwidth)) * spread
    if not np.isfinite(h) or h <= 0:
        return None
    density = (np.abs(resid) < h) / (2 * h)
    H = (X1 * (w * density)[:, None]).T @ X1
    J = tau * (1 - tau) * (X1 * (w**2)[:, None]).T @ X1
    if np.linalg.matrix_rank(H) < H.shape[0]:
        return None
    H_inv = np.linalg.inv(H)
    return np.sqrt(np.clip(np.diag(H_inv @ J @ H_inv), 0, None))


def _bound(x: np.ndarray, dx: np.ndarray) -> float:
    """Largest step t with x + t dx >= 0 (inf if dx never decreases x)."""
    neg = dx < 0
    return float(np.min(-x[neg] / dx[neg])) if neg.any() else math.inf


# --------------------------------------------------------------------------------------
# Gradient boosting (benchmark only)
# --------------------------------------------------------------------------------------


class GBMModel:
    """Wrapper so that the benchmark has the same ``predict`` interface as the linear models."""

    def __init__(self, estimator):
        self.estimator = estimator
        self.info = {"n_iter": int(estimator.n_iter_)}

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.estimator.predict(X)


def fit_gbm(X: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int) -> GBMModel:
    """Histogram gradient boosting with fixed hyper-parameters (no early stopping: deterministic)."""
    estimator = HistGradientBoostingRegressor(early_stopping=False, random_state=seed, **GBM_PARAMS)
    with threadpool_limits(limits=THREADS, user_api="openmp"):
        estimator.fit(X, y, sample_weight=w / w.mean())
    return GBMModel(estimator)

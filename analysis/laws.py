"""Mixing laws: the static log-linear law (Data Mixing Laws, Ye et al. 2024; the paper's eq. for the
static law) and the linear dynamic law (Aioli), their fits and the optimal mixture.

Static law, per loss column i:   L_i(p) = c_i + k_i * exp(sum_j t_ij p_j).
On the simplex (sum_j p_j = 1) adding d to every t_ij and dividing k_i by e^d changes nothing, so the
fitted parameters are reported in one gauge: sum_j t_ij = 0 over the columns that were ever non-zero,
which makes k_i = L_i(uniform) - c_i. A column whose weight is always 0 cannot be fitted: its t_ij is
reported as None, it counts as an average column in predictions (t = 0 in this gauge), and the optimum
never puts weight on it.

Dynamic law, per group i:   L_i(child end) - L_i(parent break) = -sum_j A_ij p_j  (+ b_i optionally),
where p is the child's mixture: A_ij is the loss drop of group i per unit proportion of group j, the
same orientation as Aioli's A (rows = evaluated group, columns = trained group).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import fit_metrics

STATIC_LAW = "L_i(p) = c_i + k_i * exp(sum_j t_ij p_j)"
DYNAMIC_LAW = "L_i(end) - L_i(start) = -sum_j A_ij p_j"
C_FRACTIONS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)  # starting offsets c0 as fractions of the smallest loss


@dataclass
class StaticFit:
    c: float
    k: float
    t: np.ndarray          # (k_columns,), gauge sum over active = 0, dead columns 0
    active: np.ndarray     # (k_columns,) bool, column ever non-zero in the fitted data

    def predict(self, X) -> np.ndarray:
        return self.c + self.k * np.exp(np.asarray(X, float) @ self.t)

    @classmethod
    def from_internal(cls, theta, active):
        """Internal form c + exp(X_active @ u) -> reported gauge (the mean of u moves into log k)."""
        u = np.asarray(theta[1:], float)
        t = np.zeros(active.size)
        t[active] = u - u.mean()
        return cls(c=float(theta[0]), k=float(np.exp(u.mean())), t=t, active=active.copy())

    def internal(self) -> np.ndarray:
        return np.concatenate([[self.c], self.t[self.active] + np.log(self.k)])


def _residual_fns(Xa, y):
    def residuals(theta):
        return theta[0] + np.exp(Xa @ theta[1:]) - y

    def jacobian(theta):
        e = np.exp(Xa @ theta[1:])
        return np.column_stack([np.ones_like(y), e[:, None] * Xa])

    return residuals, jacobian


def _c_bounds(y):
    """c in [0, min observed loss]: a floor above the smallest loss could not fit the data."""
    lo_y = float(np.min(y))
    if lo_y > 0:
        return 0.0, lo_y
    return lo_y - (float(np.ptp(y)) + 1.0), lo_y  # losses <= 0 (differences): let the floor go below


def _solve(Xa, y, theta0, max_nfev=None):
    from scipy.optimize import least_squares

    lo, hi = _c_bounds(y)
    theta0 = np.array(theta0, float)
    theta0[0] = min(max(theta0[0], lo), hi)
    res_fn, jac_fn = _residual_fns(Xa, y)
    bounds = (np.r_[lo, np.full(Xa.shape[1], -np.inf)], np.r_[hi, np.full(Xa.shape[1], np.inf)])
    sol = least_squares(res_fn, theta0, jac=jac_fn, bounds=bounds, method="trf", x_scale="jac",
                        max_nfev=max_nfev, ftol=1e-12, xtol=1e-12, gtol=1e-12)
    return sol.x, float(np.sum(sol.fun ** 2))


def fit_static_column(X, y, restarts: int = len(C_FRACTIONS), seed: int = 0, active=None) -> StaticFit:
    """Least-squares fit of one column from several starts: each start fixes c0, solves log(y - c0) =
    X u exactly as a linear problem (the sum-to-one rows absorb log k), then refines all parameters with
    bounded least squares. The lowest residual wins."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    if active is None:
        active = X.max(axis=0) > 0
    Xa = X[:, active]
    lo, hi = _c_bounds(y)
    rng = np.random.default_rng(seed)
    fracs = list(C_FRACTIONS[:max(1, restarts)])
    fracs += list(rng.uniform(0.0, 0.999, size=max(0, restarts - len(C_FRACTIONS))))
    res_fn, _ = _residual_fns(Xa, y)
    best = None
    for f in fracs:
        c0 = lo + f * (hi - lo) if lo < 0 else f * hi
        gap = np.maximum(y - c0, 1e-6 * max(1.0, abs(hi)))
        u0 = np.linalg.lstsq(Xa, np.log(gap), rcond=None)[0]
        # cheap Levenberg-Marquardt from every start; scipy's trust-region solver polishes the winner
        theta = _levenberg_marquardt(Xa, y, np.r_[c0, u0], iters=200)
        cost = float(np.sum(res_fn(theta) ** 2))
        if best is None or cost < best[1]:
            best = (theta, cost)
    theta, cost = _solve(Xa, y, best[0])
    return StaticFit.from_internal(theta if cost <= best[1] else best[0], active)


def _levenberg_marquardt(Xa, y, theta, iters: int = 20):
    """Levenberg-Marquardt with c kept in its bounds: ~1 ms where scipy's least_squares takes ~60 ms on
    512 rows, which makes multi-start fits and the leave-one-out refits (started at the full fit, a few
    steps each) affordable."""
    lo, hi = _c_bounds(y)
    res_fn, jac_fn = _residual_fns(Xa, y)
    theta = np.array(theta, float)
    theta[0] = min(max(theta[0], lo), hi)
    r = res_fn(theta)
    cost, lam = float(r @ r), 1e-4
    for _ in range(iters):
        J = jac_fn(theta)
        H, g = J.T @ J, J.T @ r
        while True:
            step = _damped_step(H, g, lam)
            if step is not None and not lo <= theta[0] + step[0] <= hi:
                bound = hi if step[0] > 0 else lo
                if abs(theta[0] - bound) > 1e-12 * max(1.0, abs(bound)):
                    step = step * ((bound - theta[0]) / step[0])  # shorten the step to land on the bound
                else:
                    # already on the bound: step in the other parameters only (clipping the full step
                    # instead stalls, and fits often sit on c = min loss)
                    sub = _damped_step(H[1:, 1:], g[1:], lam)
                    step = None if sub is None else np.r_[0.0, sub]
            if step is not None:
                cand = theta + step
                rc = res_fn(cand)
                new_cost = float(rc @ rc)
                if np.isfinite(new_cost) and new_cost <= cost:
                    break
            lam *= 10.0
            if lam > 1e10:
                return theta
        done = cost - new_cost <= 1e-12 * max(cost, 1e-300)
        theta, r, cost, lam = cand, rc, new_cost, max(lam / 10.0, 1e-12)
        if done:
            break
    return theta


def _damped_step(H, g, lam):
    try:
        return np.linalg.solve(H + lam * np.diag(np.diag(H) + 1e-12), -g)
    except np.linalg.LinAlgError:
        return None


def loo_predictions(X, y, fit: StaticFit) -> np.ndarray:
    """Leave-one-out predictions: each row left out in turn, the law refit warm-started from the full fit
    (one start: removing one row moves the optimum only slightly)."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    Xa = X[:, fit.active]
    theta_full = fit.internal()
    out = np.empty_like(y)
    keep = np.ones(y.size, bool)
    for r in range(y.size):
        keep[r] = False
        theta = _levenberg_marquardt(Xa[keep], y[keep], theta_full)
        out[r] = theta[0] + np.exp(Xa[r] @ theta[1:])
        keep[r] = True
    return out


def fit_static(table, restarts: int = len(C_FRACTIONS), loo: bool = True, seed: int = 0) -> dict:
    """{loss column: {"fit": StaticFit, "metrics": {...}}} for every loss column of `table`."""
    active = table.X.max(axis=0) > 0
    out = {}
    for j, name in enumerate(table.loss_columns):
        y = table.Y[:, j]
        fit = fit_static_column(table.X, y, restarts, seed, active)
        metrics = fit_metrics(y, fit.predict(table.X))
        metrics["loo_mae"] = None
        if loo and y.size > active.sum() + 2:  # fewer rows than parameters + 2: LOO means nothing
            metrics["loo_mae"] = float(np.mean(np.abs(loo_predictions(table.X, y, fit) - y)))
        out[name] = {"fit": fit, "metrics": metrics}
    return out


def static_fit_json(fit: StaticFit, columns) -> dict:
    return {"c": fit.c, "k": fit.k,
            "t": {c: (float(fit.t[j]) if fit.active[j] else None) for j, c in enumerate(columns)}}


def optimize_static(fits, weights, active, starts=(), seed: int = 0, n_random: int = 8, upper=None):
    """argmin over the simplex (inactive columns fixed at 0; p_j <= upper_j when given, e.g. the largest
    observed weight, to stay where the law was fitted) of sum_i weights_i * L_i(p).

    Each L_i is convex in p (exp of an affine map), so this is a convex problem and SLSQP from a few
    starts (uniform, the given ones, random) reaches the global minimum; the starts only guard against
    an occasional SLSQP stall. Returns (p, objective value)."""
    from scipy.optimize import minimize

    active = np.asarray(active, bool)
    idx = np.flatnonzero(active)
    a = idx.size
    C = sum(w * f.c for f, w in zip(fits, weights))
    K = np.array([w * f.k for f, w in zip(fits, weights)])
    T = np.array([f.t[idx] for f in fits])            # (m, a)

    def objective(q):
        e = K * np.exp(T @ q)
        return C + float(e.sum()), T.T @ e

    ub = np.ones(a) if upper is None else np.minimum(np.asarray(upper, float)[idx], 1.0)
    rng = np.random.default_rng(seed)
    candidates = [np.full(a, 1.0 / a)] + [np.asarray(s, float)[idx] for s in starts]
    candidates += list(rng.dirichlet(np.ones(a), size=n_random))
    best = None
    for q0 in candidates:
        q0 = np.clip(q0, 0, None)
        q0 = q0 / q0.sum() if q0.sum() > 0 else np.full(a, 1.0 / a)
        q0 = np.minimum(q0, ub)  # SLSQP restores the sum; starting inside the box avoids a bad first step
        sol = minimize(objective, q0, jac=True, method="SLSQP", bounds=list(zip(np.zeros(a), ub)),
                       constraints=[{"type": "eq", "fun": lambda q: q.sum() - 1.0,
                                     "jac": lambda q: np.ones_like(q)}],
                       options={"maxiter": 500, "ftol": 1e-14})
        q = np.clip(sol.x, 0, ub)
        q /= q.sum()
        val = objective(q)[0]
        if best is None or val < best[1]:
            best = (q, val)
    p = np.zeros(active.size)
    p[idx] = best[0]
    return p, float(best[1])


@dataclass
class DynamicFit:
    A: np.ndarray          # (m groups, k mixture columns)
    intercept: np.ndarray  # (m,), zeros without --intercept
    metrics: list          # per group fit_metrics of the loss change


def fit_dynamic(P, dL, intercept: bool = False) -> DynamicFit:
    """Least squares of dL[:, i] = -P @ A[i] (+ b_i) for every group i.

    On the simplex an intercept is not identifiable next to A (adding b to a row of A is the same
    model); with `intercept` the minimum-norm solution is returned, as numpy's lstsq gives it."""
    P, dL = np.asarray(P, float), np.asarray(dL, float)
    design = np.column_stack([-P, np.ones(len(P))]) if intercept else -P
    coef = np.linalg.lstsq(design, dL, rcond=None)[0]     # (k(+1), m)
    A = coef[:P.shape[1]].T
    b = coef[P.shape[1]] if intercept else np.zeros(dL.shape[1])
    pred = design @ coef
    return DynamicFit(A=A, intercept=b, metrics=[fit_metrics(dL[:, i], pred[:, i]) for i in range(dL.shape[1])])

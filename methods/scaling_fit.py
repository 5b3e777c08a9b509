"""ADO's per-group scaling law L(n) = eps + beta n^-alpha, fitted in log space as in the reference code:
log Lhat = logsumexp(a - alpha log n, e) with beta = e^a, eps = e^e, minimising the sum of Huber(1e-3)
residuals of log L plus soft constraints that keep alpha in [0, 0.8], a <= 6.5 and e >= 0.5.

The reference runs L-BFGS (jaxopt) from every point of a 8 x 8 x 8 grid of starts; here the objective is
evaluated on the whole grid at once (numpy) and a quasi-Newton search runs from the best few starts only, which
keeps a refit of a group to a fraction of a second on a CPU. The search is scipy's BFGS with the analytic
gradient: with 3 parameters its dense 3 x 3 inverse-Hessian estimate is what L-BFGS approximates, and scipy's
L-BFGS-B calls threaded BLAS on 3-vectors, which made it 20 times slower without OMP_NUM_THREADS=1. The best
final objective wins; a non-finite result is reported as None.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

HUBER_DELTA = 1e-3
# the reference's starts: a in -2..5, e in -2..1.5 by 0.5, alpha in 0..0.7 by 0.1
GRID_A = np.arange(-2.0, 6.0, 1.0)
GRID_E = np.arange(-2.0, 2.0, 0.5)
GRID_ALPHA = np.arange(0.0, 0.8, 0.1)
STARTS = 8  # L-BFGS runs from the best STARTS grid points


def _grid() -> np.ndarray:
    a, e, alpha = np.meshgrid(GRID_A, GRID_E, GRID_ALPHA, indexing="ij")
    return np.stack([a.ravel(), e.ravel(), alpha.ravel()], axis=1)


def predict_log(params: np.ndarray, log_n: np.ndarray) -> np.ndarray:
    """log Lhat for params (..., 3) = (a, e, alpha) at log n (T,): shape (..., T)."""
    params = np.asarray(params, np.float64)
    a, e, alpha = (params[..., i:i + 1] for i in range(3))
    return np.logaddexp(a - alpha * log_n, e)


def objective(params: np.ndarray, log_n: np.ndarray, log_loss: np.ndarray) -> np.ndarray:
    """The reference's loss for params (..., 3): sum of Huber residuals plus the soft constraints."""
    params = np.asarray(params, np.float64)
    r = np.abs(log_loss - predict_log(params, log_n))
    huber = np.where(r > HUBER_DELTA, HUBER_DELTA * (r - 0.5 * HUBER_DELTA), 0.5 * r * r).sum(-1)
    a, e, alpha = params[..., 0], params[..., 1], params[..., 2]
    penalty = (np.maximum(alpha - 0.8, 0.0) - np.minimum(alpha, 0.001) + np.maximum(a - 6.5, 0.0)
               + np.maximum(0.5 - e, 0.0))
    return huber + penalty


def _gradient(params: np.ndarray, log_n: np.ndarray, log_loss: np.ndarray) -> np.ndarray:
    """Analytic gradient of `objective` for one parameter vector (the penalties' subgradients)."""
    a, e, alpha = params
    x = a - alpha * log_n
    pred = np.logaddexp(x, e)
    share = np.exp(x - pred)  # d pred / d a; d pred / d e = 1 - share
    r = log_loss - pred
    dr = -np.clip(r, -HUBER_DELTA, HUBER_DELTA)  # d huber / d pred
    grad = np.array([(dr * share).sum(), (dr * (1.0 - share)).sum(), (dr * share * -log_n).sum()])
    grad[2] += float(alpha > 0.8) - float(alpha < 0.001)
    grad[0] += float(a > 6.5)
    grad[1] -= float(e < 0.5)
    return grad


def fit_power_law(counts: np.ndarray, losses: np.ndarray):
    """(a, e, alpha) fitted to losses (T,) at counts (T,) (all > 0), or None when the fit is not finite."""
    log_n = np.log(np.asarray(counts, np.float64))
    log_loss = np.log(np.asarray(losses, np.float64))
    if log_n.size == 0 or not (np.all(np.isfinite(log_n)) and np.all(np.isfinite(log_loss))):
        return None
    grid = _grid()
    values = objective(grid, log_n, log_loss)
    best, best_value = None, np.inf
    for start in grid[np.argsort(values, kind="stable")[:STARTS]]:
        res = minimize(objective, start, args=(log_n, log_loss), jac=_gradient, method="BFGS",
                       options={"maxiter": 200, "gtol": 1e-9})
        value = float(objective(res.x, log_n, log_loss))
        if np.all(np.isfinite(res.x)) and np.isfinite(value) and value < best_value:
            best, best_value = res.x.copy(), value
    return best


def law_value(params: np.ndarray, n) -> np.ndarray:
    """L(n) = e^e + e^a n^-alpha for params (k, 3) at n (scalar or (k,))."""
    params = np.asarray(params, np.float64)
    return np.exp(params[:, 1]) + np.exp(params[:, 0]) * np.asarray(n, np.float64) ** -params[:, 2]

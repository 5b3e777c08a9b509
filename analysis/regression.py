"""A non-parametric mixture -> loss predictor (RegMix, Liu et al. 2025): one LightGBM regressor per
target, its cross-validated error, and a predicted optimum found by scoring many sampled mixtures and
averaging the top candidates (averaging smooths the tree model's piecewise-constant surface).

Candidates are Dirichlet draws around the training distribution: alpha = mean training mixture x S,
with the concentration S log-uniform in [k/10, 10k] (small S: near the vertices, large S: near the
mean), plus the training mixtures themselves. Columns never used in training get no weight.
"""
from __future__ import annotations

import numpy as np

from errors import UsageError

from .common import r2_score, spearman

DEFAULT_PARAMS = {
    "objective": "regression", "learning_rate": 0.01, "num_leaves": 31, "min_data_in_leaf": 20,
    "verbose": -1, "deterministic": True, "force_row_wise": True,
}


def _lgb():
    try:
        import lightgbm
    except ImportError:
        raise UsageError("the regression command needs LightGBM: pip install lightgbm") from None
    return lightgbm


def train_model(X, y, num_iterations: int = 1000, seed: int = 0, params=None, threads: int = 1):
    """One booster. One thread by default: on a small shared machine OpenMP threads that spin-wait on a
    busy core made training 20x slower in our measurements, and 512 rows gain nothing from more."""
    lgb = _lgb()
    # LightGBM's default leaf size (20) would leave a small sweep (say 11 runs) with no split at all
    leaf = min(DEFAULT_PARAMS["min_data_in_leaf"], max(2, len(y) // 10))
    p = {**DEFAULT_PARAMS, "min_data_in_leaf": leaf, "seed": seed, "num_threads": threads, **(params or {})}
    data = lgb.Dataset(np.asarray(X, float), label=np.asarray(y, float),
                       params={"verbose": -1, "min_data_in_bin": 1, "min_data_in_leaf": p["min_data_in_leaf"]})
    return lgb.train(p, data, num_boost_round=num_iterations)


def cross_validate(X, y, folds: int = 5, num_iterations: int = 1000, seed: int = 0, threads: int = 1) -> dict:
    """Out-of-fold predictions over `folds` seeded shuffled folds; MAE, Spearman and R^2 on them."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    folds = max(2, min(folds, len(y)))
    order = np.random.default_rng(seed).permutation(len(y))
    pred = np.empty_like(y)
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        pred[test] = train_model(X[train], y[train], num_iterations, seed, threads=threads).predict(X[test])
    return {"cv_mae": float(np.mean(np.abs(pred - y))), "cv_spearman": spearman(pred, y),
            "cv_r2": r2_score(y, pred), "folds": folds}


def fit_regression(table, folds: int = 5, num_iterations: int = 1000, seed: int = 0, threads: int = 1) -> dict:
    """{loss column: {"model": booster, "cv": {...} or None}} (folds=0 skips cross-validation)."""
    out = {}
    for j, name in enumerate(table.loss_columns):
        y = table.Y[:, j]
        cv = cross_validate(table.X, y, folds, num_iterations, seed, threads) if folds else None
        out[name] = {"model": train_model(table.X, y, num_iterations, seed, threads=threads), "cv": cv}
    return out


def sample_candidates(X_train, n: int = 50000, seed: int = 0) -> np.ndarray:
    X_train = np.asarray(X_train, float)
    active = X_train.max(axis=0) > 0
    k = int(active.sum())
    prior = X_train[:, active].mean(axis=0)
    rng = np.random.default_rng(seed)
    S = k * 10.0 ** rng.uniform(-1.0, 1.0, size=n)
    draws = rng.gamma(np.maximum(prior[None, :] * S[:, None], 1e-3))  # Dirichlet via normalized gammas
    sums = draws.sum(axis=1, keepdims=True)
    draws = np.where(sums > 0, draws / np.where(sums > 0, sums, 1), 1.0 / k)
    out = np.zeros((n, active.size))
    out[:, active] = draws
    return np.vstack([out, X_train])


def predicted_optimum(models, weights, candidates, top_k: int = 100) -> dict:
    """Score candidates by weights . predicted losses; the optimum is the mean of the top_k mixtures."""
    weights = np.asarray(weights, float)
    preds = np.column_stack([m.predict(candidates) for m in models])
    score = preds @ weights
    top = np.argsort(score)[:max(1, min(top_k, len(score)))]
    mix = candidates[top].mean(axis=0)
    mix /= mix.sum()
    at_mix = np.array([m.predict(mix[None, :])[0] for m in models])
    return {"mixture": mix, "predicted_losses": at_mix, "predicted_objective": float(at_mix @ weights),
            "best_candidate": candidates[top[0]], "best_candidate_objective": float(score[top[0]]),
            "top_k": int(top.size), "n_candidates": int(len(candidates))}

"""Well-spread mixtures for a sweep (the paper's `dirichlet_cover.py`, rewritten).

Draw `oversample` x N points from a seeded Dirichlet(alpha), then repeatedly replace the closest pair
(Euclidean distance) by its midpoint until N points remain: merging removes clusters first, so the
survivors cover the simplex more evenly than N plain Dirichlet draws. Midpoints of simplex points stay
on the simplex. For small k a regular grid (`grid_mixtures`) is the simpler choice, e.g. k=2 step 0.1
gives the paper's 11-point m=2 sweep.
"""
from __future__ import annotations

import itertools

import numpy as np

from errors import UsageError


def dirichlet_cover(k: int, n: int, alpha: float = 1.5, seed: int = 0, oversample: int = 16) -> np.ndarray:
    if k < 2 or n < 1:
        raise UsageError(f"--k must be >= 2 and --n >= 1 (got k={k}, n={n})")
    if alpha <= 0 or oversample < 1:
        raise UsageError("--alpha must be > 0 and --oversample >= 1")
    if n * oversample > 8000:  # the pairwise-distance matrix is (n*oversample)^2 floats
        raise UsageError(f"--n {n} x --oversample {oversample} is too many points; lower --oversample")
    pts = np.random.default_rng(seed).dirichlet(np.full(k, float(alpha)), size=n * oversample)
    alive = np.ones(len(pts), bool)
    D = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    for _ in range(len(pts) - n):
        i, j = np.unravel_index(np.argmin(D), D.shape)
        pts[i] = 0.5 * (pts[i] + pts[j])
        alive[j] = False
        D[j, :] = D[:, j] = np.inf
        d = np.sqrt(((pts - pts[i]) ** 2).sum(-1))
        d[~alive] = np.inf
        d[i] = np.inf
        D[i, :] = D[:, i] = d
    out = pts[alive]
    return out / out.sum(axis=1, keepdims=True)


def grid_mixtures(k: int, step: float) -> np.ndarray:
    """Every mixture whose weights are multiples of `step` (1/step must be an integer)."""
    m = round(1.0 / step)
    if m < 1 or abs(m * step - 1.0) > 1e-9:
        raise UsageError(f"--grid {step}: 1/step must be a whole number (e.g. 0.1, 0.25)")
    if k < 2:
        raise UsageError("--k must be >= 2")
    rows = [c for c in itertools.product(range(m + 1), repeat=k - 1) if sum(c) <= m]
    return np.array([list(c) + [m - sum(c)] for c in rows], float) / m


def min_pairwise_distance(pts) -> float:
    pts = np.asarray(pts, float)
    D = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    return float(D.min())


def format_lines(pts, decimals: int = 6) -> str:
    """One comma-separated mixture per line (the paper's proportions-file format)."""
    return "".join(",".join(f"{x:.{decimals}f}" for x in row) + "\n" for row in pts)

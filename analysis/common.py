"""Small shared helpers: NaN-free JSON, fit metrics, column selection by glob patterns."""
from __future__ import annotations

import fnmatch
import json
import math
import os

import numpy as np

from errors import UsageError


def jsonable(obj):
    """Plain Python for json.dump: numpy scalars/arrays to numbers/lists, NaN and inf to None (JSON has
    no NaN, and a consumer in another language would choke on it)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return x if math.isfinite(x) else None
    return obj


def write_json(path: str, obj) -> str:
    """Write `obj` as indented JSON (NaN -> null) via a temporary file, so a crash leaves no half file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(jsonable(obj), f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_json(path: str, what: str = "file"):
    """Load a JSON file; a missing or malformed file is the user's mistake (UsageError)."""
    if not os.path.isfile(path):
        raise UsageError(f"{what} {path} does not exist")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise UsageError(f"{what} {path} is not valid JSON ({err}); rewrite or remove it") from None


def r2_score(y, pred) -> float:
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    ss_res = float(np.sum((y - pred) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else float("nan")
    return 1.0 - ss_res / ss_tot


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def fit_metrics(y, pred) -> dict:
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    err = pred - y
    return {"r2": r2_score(y, pred), "mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err))),
            "n": int(y.size)}


def match_columns(available, patterns, flag: str, source: str, exclude=()) -> list:
    """Columns of `available` (kept in their order) matching any glob pattern; none matching = UsageError."""
    chosen = [c for c in available if c not in exclude and any(fnmatch.fnmatchcase(c, p) for p in patterns)]
    if not chosen:
        shown = ", ".join(list(available)[:8]) + (" ..." if len(available) > 8 else "")
        raise UsageError(f"{flag} {' '.join(patterns)} matches no column of {source} (columns: {shown})")
    return chosen


def normalize_rows(X, names, source: str) -> np.ndarray:
    """Rows of mixture weights rescaled to sum 1 (published tables round to 3 decimals: sums 0.996-1.003)."""
    X = np.asarray(X, float)
    if not np.all(np.isfinite(X)) or np.any(X < 0):
        raise UsageError(f"{source}: mixture weights must be finite and non-negative")
    sums = X.sum(axis=1)
    bad = np.flatnonzero(sums <= 0)
    if bad.size:
        raise UsageError(f"{source}: row {names[bad[0]]} has all mixture weights zero; remove it")
    return X / sums[:, None]

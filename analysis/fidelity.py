"""How well each method's own mixing-law parameters A^t match the A* fitted from a dynamic sweep (the
paper's method-parameter analysis).

- A[i][j] = loss drop of evaluated group i per unit proportion of trained group j, for every method: read
  from `aioli.json`, `doremi.json` (diag of the excess), `doge.json` (the alignment matrix) or the
  Skill-it graph (diag(L) G^T).
- sim = 0.5 cos(s*, s) + 0.5 Spearman(s*, s), s = column sums (A^t scaled onto A* by least squares).
  The files and formulas in full: docs/analysis.md.
"""
from __future__ import annotations

import os

import numpy as np

from errors import UsageError
from methods.graphs import load_graph  # the trainer's reader: .npy/.json, groups, orientation

from .common import read_json, spearman

ARTEFACTS = {"aioli": ["aioli.json"], "doremi": ["doremi.json", "doremi_weights.json"],
             "doge": ["doge.json", "doge_weights.json"], "skillit": ["skillit.json"]}


def _find(run, method):
    for name in ARTEFACTS[method]:
        path = os.path.join(run.path, name)
        if os.path.isfile(path):
            return path, read_json(path, f"{method} artefact")
    return None, None


def _vector(value, groups, file_groups):
    """A per-group vector given as a list (in the file's group order) or a {group: x} dict."""
    if isinstance(value, dict):
        return np.array([float(value[g]) for g in groups])
    arr = np.asarray(value, float)
    return arr[[file_groups.index(g) for g in groups]] if file_groups != groups else arr


def _matrix(value, groups, file_groups):
    M = np.asarray(value, float)
    if M.shape != (len(file_groups), len(file_groups)):
        raise UsageError(f"matrix of shape {M.shape} does not match {len(file_groups)} groups")
    idx = [file_groups.index(g) for g in groups]
    return M[np.ix_(idx, idx)]


def _history(path, data, key, groups, to_matrix):
    entries = []
    for e in data.get("history") or data.get("rounds") or []:
        value = e.get(key, e.get("A")) if isinstance(e, dict) else None
        if value is not None:
            entries.append((int(e.get("step", len(entries))), to_matrix(value)))
    if not entries:
        raise UsageError(f"{path}: no history entry holds '{key}'")
    return entries


def method_matrices(run):
    """(groups, [(step, A)]) from the run's own artefact, by its config method."""
    method = run.method
    if method not in ARTEFACTS:
        raise UsageError(f"{run.path}: method '{method}' has no parameters to compare (aioli, doremi, doge, skillit)")
    groups = run.groups
    path, data = _find(run, method)
    file_groups = list((data or {}).get("groups") or groups)
    missing = [g for g in groups if g not in file_groups]
    if missing:
        raise UsageError(f"{path}: groups {missing} of config.json are not in the file")
    if method == "aioli":
        if data is None:
            raise UsageError(f"{run.path} has no aioli.json")
        return groups, _history(path, data, "A", groups, lambda v: _matrix(v, groups, file_groups))
    if method == "doremi":
        if data is None:
            raise UsageError(f"{run.path} has no doremi.json")
        return groups, _history(path, data, "excess", groups,
                                lambda v: np.diag(_vector(v, groups, file_groups)))
    if method == "doge":
        if data is None:
            raise UsageError(f"{run.path} has no doge.json")
        flip = str(data.get("orientation", "")).lower().startswith("rows = trained")
        return groups, _history(path, data, "matrix", groups,
                                lambda v: _matrix(v, groups, file_groups).T if flip else _matrix(v, groups, file_groups))
    return groups, _skillit_matrices(run, data, path, groups, file_groups)


def _skillit_matrices(run, data, path, groups, file_groups):
    if data is not None and data.get("graph") is not None:
        G = _matrix(data["graph"], groups, file_groups)
    else:
        gp = run.config.get("graph_path")
        if not gp:
            raise UsageError(f"{run.path}: no skillit.json graph and no graph_path in config.json")
        G = load_graph(gp, groups)
    hist = run.val_history()
    if not hist:
        raise UsageError(f"{run.path}/results.json: Skill-it's A needs val_history")
    return [(s, np.diag([losses[g] for g in groups]) @ G.T) for s, losses in hist]


def method_matrix(run, step=None) -> tuple:
    """(groups, A^t): Aioli / Skill-it: the latest entry at or before `step` (default: the last);
    DoReMi / DoGE: the mean of the entries at or before `step` (they record the last N steps)."""
    groups, entries = method_matrices(run)
    chosen = [(s, A) for s, A in entries if step is None or s <= step]
    if not chosen:
        raise UsageError(f"{run.path}: no parameters recorded at or before step {step}")
    if run.method in ("doremi", "doge"):
        return groups, np.mean([A for _, A in chosen], axis=0)
    return groups, max(chosen, key=lambda e: e[0])[1]


def similarity(A_star, A_hat) -> dict:
    A_star, A_hat = np.asarray(A_star, float), np.asarray(A_hat, float)
    denom = float(np.sum(A_hat * A_hat))
    b = float(np.sum(A_star * A_hat) / denom) if denom > 0 else 0.0
    s_star, s_hat = A_star.sum(axis=0), (b * A_hat).sum(axis=0)
    n1, n2 = np.linalg.norm(s_star), np.linalg.norm(s_hat)
    if n1 == 0 or n2 == 0:
        cos, rho = 0.0, float("nan")
    else:
        s_star, s_hat = s_star / n1, s_hat / n2
        cos, rho = float(s_star @ s_hat), spearman(s_star, s_hat)
    sim = 0.5 * cos + 0.5 * (0.0 if np.isnan(rho) else rho)
    return {"sim": sim, "cos": cos, "spearman": rho, "scale": b,
            "colsum_true": s_star, "colsum_method": s_hat}

"""Skills graphs (Skill-it's G): loading from `.json` or `.npy`, aligned to a run's group order.

Convention (docs/formats.md): G[i, j] is the relative validation-loss drop of group j when training
on group i only, i.e. rows = trained group, columns = evaluated group. Skill-it's rule
p_i ∝ exp(eta * sum_j G[i, j] * S_j) reads G in that orientation.

JSON form: {"groups": [...], "graph": [[...]], "orientation": "<one of ORIENTATIONS>"}. The groups
are matched to the run's by NAME: a permutation is reordered, anything else is an error. A JSON file
written with rows = evaluated group (the A-matrix convention of Aioli's analysis) says so in
"orientation" and is transposed here. A missing "orientation" means the canonical one.

`.npy` form: a plain k x k float array (loaded with allow_pickle=False, so a pickled object array is
refused), canonical orientation, rows and columns in the run's group order (the paper's shipped
graphs are in alphabetical order, which is also the order of its scripts' --slice_list).
"""
from __future__ import annotations

import json
import os

import numpy as np

from errors import UsageError

CANONICAL = "rows = trained group, columns = evaluated group"
TRANSPOSED = "rows = evaluated group, columns = trained group"
ORIENTATIONS = (CANONICAL, TRANSPOSED)


def _norm_orientation(text) -> str:
    return " ".join(str(text).lower().split())


def _check_matrix(arr, k: int, path: str) -> np.ndarray:
    try:
        graph = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise UsageError(f"--graph_path {path}: the graph must be a k x k matrix of numbers") from None
    if graph.shape != (k, k):
        raise UsageError(f"--graph_path {path}: graph has shape {graph.shape}, the run has {k} groups; "
                         f"give a {k} x {k} matrix (rows = trained group, columns = evaluated group)")
    if not np.all(np.isfinite(graph)):
        raise UsageError(f"--graph_path {path}: graph has NaN or infinite entries")
    return graph


def _align(graph: np.ndarray, file_groups, groups: list, path: str) -> np.ndarray:
    """Reorder rows and columns from the file's group order to the run's."""
    file_groups = [str(g) for g in file_groups]
    if len(set(file_groups)) != len(file_groups):
        raise UsageError(f"--graph_path {path}: 'groups' has duplicates: {file_groups}")
    if sorted(file_groups) != sorted(groups):
        missing = [g for g in groups if g not in file_groups]
        extra = [g for g in file_groups if g not in groups]
        raise UsageError(f"--graph_path {path}: the graph's groups {file_groups} are not the run's groups "
                         f"{list(groups)} (missing {missing}, extra {extra}); learn a graph for these groups")
    idx = [file_groups.index(g) for g in groups]
    return graph[np.ix_(idx, idx)]


def load_graph(path: str, groups: list) -> np.ndarray:
    """Read a skills graph and return it as float64 (k, k) in the run's group order, canonical
    orientation (rows = trained group). Raises UsageError with a fix for every bad input."""
    groups = list(groups)
    k = len(groups)
    if not os.path.isfile(path):
        raise UsageError(f"--graph_path {path}: no such file; give a .json or .npy skills graph")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise UsageError(f"--graph_path {path}: not a plain numeric .npy array ({err}); pickled "
                             "arrays are refused, save with np.save(path, float_array)") from None
        return _check_matrix(arr, k, path)
    if ext != ".json":
        raise UsageError(f"--graph_path {path}: unknown extension {ext!r}; use .json or .npy")
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"--graph_path {path}: cannot read JSON ({err})") from None
    if isinstance(obj, list):  # a bare matrix: treated like .npy (run order, canonical orientation)
        return _check_matrix(obj, k, path)
    if not isinstance(obj, dict) or "graph" not in obj:
        raise UsageError(f"--graph_path {path}: expected {{\"groups\": [...], \"graph\": [[...]], "
                         "\"orientation\": ...}} or a bare k x k list")
    graph = _check_matrix(obj["graph"], k, path)
    orientation = _norm_orientation(obj.get("orientation", CANONICAL))
    if orientation == _norm_orientation(TRANSPOSED):
        graph = graph.T.copy()
    elif orientation != _norm_orientation(CANONICAL):
        raise UsageError(f"--graph_path {path}: unknown orientation {obj.get('orientation')!r}; "
                         f"use {CANONICAL!r} or {TRANSPOSED!r}")
    if "groups" in obj:
        graph = _align(graph, obj["groups"], groups, path)
    return graph


def graph_to_json(graph, groups: list) -> dict:
    """The JSON form of a graph (canonical orientation), e.g. for a graph-learning script to write."""
    graph = np.asarray(graph, dtype=np.float64)
    return {"groups": list(groups), "graph": graph.tolist(), "orientation": CANONICAL}

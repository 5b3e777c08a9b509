"""What sweeps of runs yield without fitting a law: the grid-search winner, Skill-it's skills graph from
one-hot runs, and the (child mixture, loss change) pairs of a dynamic parent/child sweep."""
from __future__ import annotations

import os

import numpy as np

from errors import UsageError

from .runs import common_groups, is_run_dir, load_run

SKILLS_ORIENTATION = "rows = trained group, columns = evaluated group"


def grid_winner(table, weights) -> dict:
    """The played mixture with the lowest objective (weights . losses), seeds of the same mixture
    (equal to 6 decimals) averaged first, as a grid search over a sweep picks it."""
    weights = np.asarray(weights, float)
    groups = {}
    for r, row in enumerate(np.round(table.X, 6)):
        groups.setdefault(tuple(row), []).append(r)
    best = None
    for rows in groups.values():
        losses = table.Y[rows].mean(axis=0)
        obj = float(weights @ losses)
        if best is None or obj < best[0]:
            best = (obj, rows, losses)
    obj, rows, losses = best
    return {"mixture": dict(zip(table.mixture_columns, table.X[rows].mean(axis=0))),
            "losses": dict(zip(table.loss_columns, losses)), "objective": obj, "n_rows": len(rows),
            "rows": [table.row_ids[r] for r in rows], "n_mixtures": len(groups)}


def _end_losses(run, end):
    """{group: loss} at step `end`, or at the last evaluation (history or final result) when None."""
    if end is not None:
        losses = run.val_loss_at(end)
        if losses is None:
            raise UsageError(f"{run.path}: no validation loss at step {end} (--end); evaluated steps: "
                             f"{[s for s, _ in run.val_history()]}")
        return losses
    entries = run.val_history()
    final_step = int(run.results.get("step", -1))
    if isinstance(run.results.get("val_loss"), dict) and (not entries or final_step >= entries[-1][0]):
        return run.losses("val")
    if not entries:
        raise UsageError(f"{run.path}/results.json has neither val_history nor val_loss")
    return entries[-1][1]


def skills_graph(runs, start: int = 0, end=None):
    """G[i, j] = (L_j(start) - L_j(end)) / L_j(start) for the one-hot static run trained only on group i
    (Skill-it's normalized relative loss drop). Several runs per group (seeds) are averaged; other runs
    (a sweep's interior points, other methods) are ignored, so a whole m=2 sweep can be passed.
    Returns (groups, G, {group: [run paths]}, number of runs ignored)."""
    onehot = [r for r in runs if r.method == "static" and not r.parent and r.mixture().max() >= 1 - 1e-6]
    if not onehot:
        raise UsageError("--run_dir: no one-hot static run (initial_weights 1 on one group, 0 elsewhere)")
    groups = common_groups(onehot)
    per_group = {g: [] for g in groups}
    for run in onehot:
        per_group[run.groups[int(np.argmax(run.mixture()))]].append(run)
    missing = [g for g, rs in per_group.items() if not rs]
    if missing:
        raise UsageError(f"--run_dir: no one-hot run trained on {', '.join(missing)}; pass one run per group")
    G = np.zeros((len(groups), len(groups)))
    for i, g in enumerate(groups):
        rows = []
        for run in per_group[g]:
            first = run.val_loss_at(start)
            if first is None:
                raise UsageError(f"{run.path}: val_history has no step {start} (--start); the graph needs the "
                                 "loss of the untrained model (evaluate at step 0)")
            last = _end_losses(run, end)
            l0 = np.array([first[h] for h in groups])
            lt = np.array([last[h] for h in groups])
            rows.append((l0 - lt) / l0)
        G[i] = np.mean(rows, axis=0)
    return groups, G, {g: [r.path for r in rs] for g, rs in per_group.items()}, len(runs) - len(onehot)


def _resolve_parent(child, parent_path, by_path):
    """The parent run of a child: its config's parent.path may name the run directory or a checkpoint
    inside it (run/checkpoints/step_N), absolute or relative to the cwd or to the child's sweep folder."""
    candidates = [parent_path] if os.path.isabs(parent_path) else [
        parent_path, os.path.join(os.path.dirname(child.path), parent_path),
        os.path.join(child.path, parent_path)]
    for cand in candidates:
        d = os.path.abspath(cand)
        for _ in range(4):  # the run directory is at most a few levels above a checkpoint folder
            key = os.path.realpath(d)
            if key in by_path:
                return by_path[key]
            if is_run_dir(d):
                run = load_run(d)
                by_path[key] = run
                return run
            d = os.path.dirname(d)
    raise UsageError(f"{child.path}/config.json: parent {parent_path} is not (inside) a run directory; "
                     "pass the parent runs too, or fix the path")


def dynamic_pairs(runs):
    """Children of a dynamic sweep and their parents' losses at the break step.
    Returns dict(groups, P (n, k) child mixtures, dL (n, k) child final val loss - parent val loss at the
    break, children [paths], parents [paths], parent_steps [int])."""
    by_path = {os.path.realpath(r.path): r for r in runs}
    children = [r for r in runs if r.parent]
    if not children:
        raise UsageError("--run_dir: no child run (a config.json with \"parent\": {\"path\", \"step\"}); "
                         "pass the runs started with --resume_model_path")
    groups = common_groups(children)
    P, dL, parents, steps = [], [], [], []
    for child in children:
        info = child.parent
        if not isinstance(info, dict) or "path" not in info:
            raise UsageError(f"{child.path}/config.json: 'parent' must be {{\"path\": ..., \"step\": ...}}")
        parent = _resolve_parent(child, str(info["path"]), by_path)
        step = int(info.get("step", parent.results.get("step", -1)))
        before = parent.val_loss_at(step)
        if before is None:
            raise UsageError(f"{parent.path}: no validation loss at the break step {step}")
        after = child.losses("val")
        if not all(np.isfinite(after[g]) and np.isfinite(before[g]) for g in groups):
            raise UsageError(f"{child.path}: non-finite validation loss (diverged run or parent); remove it")
        P.append([child.mixture()[child.groups.index(g)] for g in groups])
        dL.append([after[g] - before[g] for g in groups])
        parents.append(parent.path)
        steps.append(step)
    return {"groups": groups, "P": np.array(P), "dL": np.array(dL), "children": [c.path for c in children],
            "parents": parents, "parent_steps": steps}

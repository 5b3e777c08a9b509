"""Subcommands over run directories other than the static sweep fits (skills_graph, dynamic, fidelity)
and the sweep generator (cover). Same contract as `commands`: (result dict, summary lines)."""
from __future__ import annotations

import os

import numpy as np

from errors import UsageError

from .runs import find_runs


def _select_seed(runs, seed):
    if seed is None:
        return runs
    chosen = [r for r in runs if r.seed == seed]
    if not chosen:
        raise UsageError(f"--seed {seed}: no run has selection_seed {seed}")
    return chosen


def run_skills_graph(args):
    from .sweeps import SKILLS_ORIENTATION, skills_graph

    runs = _select_seed(find_runs(args.run_dir), args.seed)
    groups, G, sources, ignored = skills_graph(runs, args.start, args.end)
    result = {"groups": groups, "graph": G, "orientation": SKILLS_ORIENTATION, "start": args.start,
              "end": args.end if args.end is not None else "last evaluation", "runs": sources,
              "ignored_runs": ignored}
    if args.npy:
        os.makedirs(os.path.dirname(os.path.abspath(args.npy)), exist_ok=True)
        np.save(args.npy, G, allow_pickle=False)
    width = max(len(g) for g in groups)
    lines = [f"skills graph ({SKILLS_ORIENTATION}), relative loss drop from step {args.start}:",
             " " * (width + 2) + " ".join(f"{g[:8]:>8}" for g in groups)]
    lines += [f"  {g:<{width}}" + " ".join(f"{x:8.4f}" for x in row) for g, row in zip(groups, G)]
    if ignored:
        lines.append(f"ignored {ignored} run(s) that are not one-hot static runs")
    if args.npy:
        lines.append(f"wrote {args.npy}")
    return result, lines


def _dynamic_fit_json(fit, groups, intercept, n):
    return {"A": fit.A, "intercept": fit.intercept if intercept else None,
            "groups_fit": dict(zip(groups, fit.metrics)), "n_children": n}


def run_dynamic(args):
    from .laws import DYNAMIC_LAW, fit_dynamic
    from .sweeps import dynamic_pairs

    data = dynamic_pairs(find_runs(args.run_dir))
    groups, P, dL = data["groups"], data["P"], data["dL"]
    if len(P) < len(groups) + int(args.intercept):
        raise UsageError(f"--run_dir: {len(P)} children cannot determine a {len(groups)}-column A; "
                         "run at least one child mixture per group")
    fit = fit_dynamic(P, dL, args.intercept)
    result = {"command": "dynamic", "law": DYNAMIC_LAW + (" + b_i" if args.intercept else ""),
              "orientation": "rows = evaluated group, columns = child mixture group", "groups": groups,
              **_dynamic_fit_json(fit, groups, args.intercept, len(P)),
              "parent_steps": sorted(set(data["parent_steps"]))}
    if args.per_parent:
        per = {}
        for parent in sorted(set(data["parents"])):
            rows = [i for i, p in enumerate(data["parents"]) if p == parent]
            if len(rows) >= len(groups) + int(args.intercept):
                f = fit_dynamic(P[rows], dL[rows], args.intercept)
                per[parent] = _dynamic_fit_json(f, groups, args.intercept, len(rows))
        result["per_parent"] = per
    lines = [f"dynamic law {result['law']} on {len(P)} children of {len(set(data['parents']))} parent(s)",
             "A (rows = evaluated group, columns = child mixture group):"]
    for g, row, m in zip(groups, fit.A, fit.metrics):
        r2 = "n/a" if m["r2"] != m["r2"] else f"{m['r2']:.4f}"
        lines.append(f"  {g}: [" + ", ".join(f"{x:.4f}" for x in row) + f"]  R2 {r2}")
    return result, lines


def run_cover(args):
    from .cover import dirichlet_cover, format_lines, grid_mixtures, min_pairwise_distance

    if args.grid is not None:
        pts = grid_mixtures(args.k, args.grid)
        how = f"grid with step {args.grid}"
    else:
        if args.n is None:
            raise UsageError("cover needs --n (number of mixtures), or --grid STEP")
        pts = dirichlet_cover(args.k, args.n, args.alpha, args.seed, args.oversample)
        how = f"Dirichlet(alpha={args.alpha}) cover, seed {args.seed}, oversampling x{args.oversample}"
    pts = np.round(pts, 6)
    txt = os.path.splitext(args.output)[0] + ".txt"
    os.makedirs(os.path.dirname(os.path.abspath(txt)), exist_ok=True)
    with open(txt, "w") as f:
        f.write(format_lines(pts))
    lines = [f"{len(pts)} mixtures over {args.k} groups ({how}); closest pair {min_pairwise_distance(pts):.4f}",
             f"wrote {txt} (one comma-separated mixture per line)"]
    return pts.tolist(), lines


def run_fidelity(args):
    """sim(method A^t, A*) for every method run that has children: A* is the dynamic law fitted on its
    children, A^t the method's own parameters at the break step."""
    from .fidelity import method_matrix, similarity
    from .laws import fit_dynamic
    from .sweeps import dynamic_pairs

    runs = find_runs(args.run_dir)
    data = dynamic_pairs(runs)
    by_path = {os.path.realpath(r.path): r for r in runs}
    per_run, per_method = {}, {}
    for parent_path in sorted(set(data["parents"])):
        rows = [i for i, p in enumerate(data["parents"]) if p == parent_path]
        parent = by_path.get(os.path.realpath(parent_path))
        if parent is None:
            from .runs import load_run

            parent = load_run(parent_path)
        if parent.method not in ("aioli", "doremi", "doge", "skillit") or len(rows) < len(data["groups"]):
            continue
        step = data["parent_steps"][rows[0]]
        A_star = fit_dynamic(data["P"][rows], data["dL"][rows], args.intercept).A
        groups, A_hat = method_matrix(parent, step)
        idx = [groups.index(g) for g in data["groups"]]
        sim = similarity(A_star, A_hat[np.ix_(idx, idx)])
        per_run[parent_path] = {"method": parent.label(), "seed": parent.seed, "step": step, "A_star": A_star,
                                "A_method": A_hat[np.ix_(idx, idx)], **sim}
        per_method.setdefault(parent.label(), []).append(sim["sim"])
    if not per_run:
        raise UsageError("--run_dir: no Aioli/DoReMi/DoGE/Skill-it run with at least k children was found")
    summary = {m: {"mean_sim": float(np.mean(v)), "n": len(v)} for m, v in per_method.items()}
    result = {"command": "fidelity", "groups": data["groups"], "similarity": "0.5 cos + 0.5 Spearman of "
              "l2-normalized column sums", "methods": summary, "runs": per_run}
    lines = [f"{m}: sim {s['mean_sim']:.4f} (mean over {s['n']} run(s))" for m, s in summary.items()]
    return result, lines

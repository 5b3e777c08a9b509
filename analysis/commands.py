"""The work behind each `mixing_law_fitting.py` subcommand: every `run_<command>(args)` returns
(result dict for the JSON file, summary lines to print). Argument parsing lives in the CLI."""
from __future__ import annotations

import numpy as np

from errors import UsageError

from .common import spearman
from .runs import find_runs, static_runs
from .tables import align_eval, table_from_csv, table_from_runs


def load_table(args):
    """(Table, notes) from --run_dir (static runs of a sweep) or --csv (one or two files)."""
    if args.run_dir and args.csv:
        raise UsageError("give either --run_dir or --csv, not both")
    notes = {}
    if args.run_dir:
        runs = find_runs(args.run_dir)
        kept, skipped = static_runs(runs, args.split)
        if skipped:
            notes["skipped_runs"] = skipped
        if not kept:
            raise UsageError(f"--run_dir: none of the {len(runs)} runs is a finished static run with "
                             f"{args.split} losses (skipped: {skipped})")
        table = table_from_runs(kept, args.split, args.mixture_columns, args.loss_columns)
    elif args.csv:
        table = table_from_csv(args.csv, args.join, args.mixture_columns, args.loss_columns)
    else:
        raise UsageError("give the sweep: --run_dir DIR [DIR ...] or --csv FILE [LOSSES.csv --join KEY]")
    return table, notes


def check_identifiable(table, parameters: int, what: str) -> list:
    """Refuse a fit with fewer distinct mixtures than its parameters (it could only echo its input); notes
    for fits that are degenerate: exactly as many mixtures as parameters (the fit interpolates, so R^2 is 1
    by construction) or a loss column that never changes."""
    distinct = len(np.unique(np.round(table.X, 9), axis=0))
    if distinct < parameters:
        raise UsageError(f"{table.source}: {what} needs at least {parameters} distinct mixtures of the "
                         f"{table.X.shape[1]} mixture columns, got {distinct} (in {len(table.row_ids)} rows); add runs "
                         "with other mixtures")
    notes = []
    if distinct == parameters:
        notes.append(f"degenerate: {distinct} distinct mixtures for {parameters} parameters, so the fit can "
                     "pass through every one (R2 = 1 by construction); add mixtures for a fit that can be checked")
    flat = [c for j, c in enumerate(table.loss_columns) if np.ptp(table.Y[:, j]) == 0]
    if flat:
        notes.append(f"degenerate: loss column(s) {', '.join(flat)} are the same in every row; nothing to fit")
    return notes


def objective_weights(table, target):
    if target is None:
        m = len(table.loss_columns)
        return np.full(m, 1.0 / m), ("mean over loss columns" if m > 1 else table.loss_columns[0])
    if target not in table.loss_columns:
        raise UsageError(f"--target {target} is not a loss column (have: {', '.join(table.loss_columns[:6])} ...)")
    w = np.zeros(len(table.loss_columns))
    w[table.loss_columns.index(target)] = 1.0
    return w, target


def evaluate(table, eval_files, join, predict) -> dict:
    """Spearman and MAE per target on held-out rows; predict(X) -> (n, m) predictions."""
    ev = align_eval(table, eval_files, join)
    P = predict(ev.X)
    return {c: {"spearman": spearman(P[:, j], ev.Y[:, j]), "mae": float(np.mean(np.abs(P[:, j] - ev.Y[:, j]))),
                "n": int(len(ev.Y))} for j, c in enumerate(ev.loss_columns)}


def _fmt_mix(mix: dict, top: int = 8) -> str:
    items = [kv for kv in sorted(mix.items(), key=lambda kv: -kv[1]) if kv[1] >= 5e-4]
    return ", ".join(f"{k}={v:.3f}" for k, v in items[:top]) + (" ..." if len(items) > top else "")


def _eval_lines(evaluation):
    return [f"  held-out {c}: Spearman {m['spearman']:.4f}, MAE {m['mae']:.4f} (n={m['n']})"
            for c, m in evaluation.items()]


def run_linreg(args):
    from .laws import STATIC_LAW, fit_static, optimize_static, static_fit_json
    from .sweeps import grid_winner

    table, notes = load_table(args)
    weights, objective = objective_weights(table, args.target)
    active = table.X.max(axis=0) > 0
    # per loss column: c, k and one exponent per used column, less one for the gauge sum_j t_ij = 0
    warnings = check_identifiable(table, int(active.sum()) + 1, "the static law")
    fits = fit_static(table, restarts=args.restarts, loo=not args.no_loo, seed=args.seed)
    winner = grid_winner(table, weights)
    observed_max = table.X.max(axis=0)
    p, value = optimize_static([fits[c]["fit"] for c in table.loss_columns], weights, active,
                               starts=[np.array(list(winner["mixture"].values()))], seed=args.seed,
                               upper=observed_max if args.within_observed else None)
    beyond = [c for c, x, m in zip(table.mixture_columns, p, observed_max) if x > m + 1e-9]
    predicted = {c: float(fits[c]["fit"].predict(p[None, :])[0]) for c in table.loss_columns}
    bp = np.array(list(winner["mixture"].values()))
    winner["predicted_objective"] = float(sum(w * fits[c]["fit"].predict(bp[None, :])[0]
                                              for w, c in zip(weights, table.loss_columns)))
    result = {
        "command": "linreg", "law": STATIC_LAW,
        "gauge": "sum_j t_ij = 0 over used columns, so k_i = L_i(uniform) - c_i; unused columns: t = null",
        "source": table.source, "n_rows": len(table.row_ids), "mixture_columns": table.mixture_columns,
        "unused_mixture_columns": [c for c, a in zip(table.mixture_columns, active) if not a],
        "loss_columns": table.loss_columns, **notes,
        "groups": {c: {**static_fit_json(fits[c]["fit"], table.mixture_columns), **fits[c]["metrics"]}
                   for c in table.loss_columns},
        "objective": objective, "optimal_mixture": dict(zip(table.mixture_columns, p)),
        "predicted_losses": predicted, "predicted_objective": value, "within_observed": args.within_observed,
        "extrapolated_columns": beyond, "best_played": winner, "warnings": warnings,
    }
    if args.eval_csv:
        result["evaluation"] = evaluate(table, args.eval_csv, args.join, lambda X: np.column_stack(
            [fits[c]["fit"].predict(X) for c in table.loss_columns]))
    lines = [f"static law {STATIC_LAW} on {len(table.row_ids)} rows ({table.source})"]
    for c in table.loss_columns:
        m = fits[c]["metrics"]
        loo = "n/a" if m["loo_mae"] is None else f"{m['loo_mae']:.4f}"
        lines.append(f"  {c}: R2 {m['r2']:.4f}, MAE {m['mae']:.4f}, LOO MAE {loo}")
    lines.append(f"optimal mixture ({objective}): {_fmt_mix(result['optimal_mixture'])}")
    lines.append(f"  predicted objective {value:.4f}; best played {winner['objective']:.4f} "
                 f"(law predicts {winner['predicted_objective']:.4f}) at {_fmt_mix(winner['mixture'])}")
    lines += [f"  warning: {w}" for w in warnings]
    if beyond:
        lines.append(f"  note: {len(beyond)} column(s) exceed their largest observed weight (extrapolation; "
                     "--within_observed keeps the optimum inside the observed range)")
    if "evaluation" in result:
        lines += _eval_lines(result["evaluation"])
    if getattr(args, "plot", None):
        from .plots import plot_law_fit

        lines.append(f"wrote {plot_law_fit(table, fits, args.plot)}")
    return result, lines


def run_regression(args):
    from . import regression as reg
    from .sweeps import grid_winner

    table, notes = load_table(args)
    weights, objective = objective_weights(table, args.target)
    # as many as a linear model in the mixture (with an intercept) would need: fewer, and the trees echo rows
    warnings = check_identifiable(table, int((table.X.max(axis=0) > 0).sum()) + 1, "a regression")
    fits = reg.fit_regression(table, args.folds, args.num_iterations, args.seed, args.threads)
    models = [fits[c]["model"] for c in table.loss_columns]
    candidates = reg.sample_candidates(table.X, args.samples, args.seed)
    opt = reg.predicted_optimum(models, weights, candidates, args.top_k)
    winner = grid_winner(table, weights)
    result = {
        "command": "regression", "model": "LightGBM regressor per loss column",
        "num_iterations": args.num_iterations, "source": table.source, "n_rows": len(table.row_ids),
        "mixture_columns": table.mixture_columns, "loss_columns": table.loss_columns, **notes,
        "groups": {c: fits[c]["cv"] or {} for c in table.loss_columns}, "objective": objective,
        "optimal_mixture": dict(zip(table.mixture_columns, opt["mixture"])),
        "predicted_losses": dict(zip(table.loss_columns, opt["predicted_losses"])),
        "predicted_objective": opt["predicted_objective"],
        "search": {"n_candidates": opt["n_candidates"], "top_k": opt["top_k"],
                   "best_candidate": dict(zip(table.mixture_columns, opt["best_candidate"])),
                   "best_candidate_objective": opt["best_candidate_objective"]},
        "best_played": winner, "warnings": warnings,
    }
    if args.eval_csv:
        result["evaluation"] = evaluate(table, args.eval_csv, args.join,
                                        lambda X: np.column_stack([m.predict(X) for m in models]))
    lines = [f"LightGBM on {len(table.row_ids)} rows ({table.source})"]
    for c in table.loss_columns:
        cv = fits[c]["cv"]
        if cv:
            lines.append(f"  {c}: {cv['folds']}-fold CV MAE {cv['cv_mae']:.4f}, Spearman {cv['cv_spearman']:.4f}, "
                         f"R2 {cv['cv_r2']:.4f}")
    lines.append(f"optimal mixture ({objective}, mean of top {opt['top_k']} of {opt['n_candidates']}): "
                 f"{_fmt_mix(result['optimal_mixture'])}")
    lines.append(f"  predicted objective {opt['predicted_objective']:.4f}; best played {winner['objective']:.4f}")
    lines += [f"  warning: {w}" for w in warnings]
    if "evaluation" in result:
        lines += _eval_lines(result["evaluation"])
    return result, lines


def run_best(args):
    from .sweeps import grid_winner

    table, notes = load_table(args)
    weights, objective = objective_weights(table, args.target)
    w = grid_winner(table, weights)
    result = {"command": "best", "proportions": w["mixture"], "split": args.split, "objective": objective,
              f"objective_{args.split}_loss": w["objective"], "losses": w["losses"], "n_seeds": w["n_rows"],
              "runs": w["rows"], "n_mixtures": w["n_mixtures"], "source": table.source, **notes}
    values = " ".join(f"{v:.6g}" for v in w["mixture"].values())
    lines = [f"grid-search winner among {w['n_mixtures']} mixtures ({w['n_rows']} seed(s)): "
             f"{objective} {args.split} loss {w['objective']:.4f}",
             f"  {_fmt_mix(w['mixture'], top=len(w['mixture']))}",
             f"  --slice_list {' '.join(table.mixture_columns)} --proportions {values}"]
    return result, lines

"""A Markdown table in the style of the paper's Table 2, from many run directories, plus plots.

    python -m analysis.report RUN_DIRS... --output report.md [--plots DIR] [--json FILE]

Rows = methods (config `custom_name`, else the method; uniform static = stratified; non-uniform static
runs form the grid search), columns = settings, cells = mean ± sd over seeds of average test perplexity
(stratified absolute, others as differences). Children of dynamic sweeps, stopped and diverged runs are
left out and counted. In full: docs/analysis.md.
"""
from __future__ import annotations

import os
import re
import sys

import numpy as np

from errors import OneLineArgumentParser, UsageError, exit_on_usage_error

from .common import jsonable, read_json, write_json
from .runs import find_runs

# row order; ODM's and ADO's online runs (label odm / ado) are results, as are their final static runs (odm_final)
ORDER = ["stratified", "grid", "dml", "skillit", "doremi", "doge", "odm", "ado", "aioli"]


def _setting(run):
    return tuple(sorted(run.groups))


def _row_rank(label):
    low = label.lower().replace("-", "").replace(" ", "")
    for i, key in enumerate(ORDER):
        if low.startswith(key) or key in low:
            return (i, label)
    return (len(ORDER), label)


def _stats(values):
    v = np.asarray(values, float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else None, "n": int(v.size),
            "values": v.tolist()}


# custom names of runs that only serve a pipeline (scripts/*): a DoReMi/DoGE proxy or a Skill-it
# graph-learning run is not a method's result and gets no row
HELPER_RUNS = ("doremi_proxy", "doge_proxy", "skillit_graph")


def collect(runs):
    """{label: {setting: [runs]}}, setting labels, skipped counts. Grid search is resolved here."""
    cells, setting_labels, skipped, sweeps = {}, {}, {}, {}
    for run in runs:
        reason = None
        if run.parent:
            reason = "children of dynamic sweeps"
        elif run.config.get("custom_name") in HELPER_RUNS:
            reason = "helper runs of a pipeline (proxies, graph learning)"
        elif run.average_test_perplexity() is None:
            reason = f"runs without test results (status {run.status})"
        elif not np.isfinite(run.average_test_perplexity()):
            reason = "runs with a non-finite test loss (diverged)"
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        key = _setting(run)
        setting_labels.setdefault(key, "/".join(run.groups))
        label = run.label()
        if label in ("static", "stratified"):
            sweeps.setdefault(key, []).append(run)  # the uniform mixture is a grid point too
        if label != "static":
            cells.setdefault(label, {}).setdefault(key, []).append(run)
    for key, sweep in sweeps.items():
        if all(r.label() == "stratified" for r in sweep):
            continue  # no sweep in this setting
        by_mix = {}
        for run in sweep:
            mix = tuple(np.round([run.mixture()[run.groups.index(g)] for g in key], 6))
            by_mix.setdefault(mix, []).append(run)
        best = min(by_mix.values(), key=lambda rs: np.mean([_avg_val(r) for r in rs]))
        cells.setdefault("grid search", {})[key] = best
    return cells, setting_labels, skipped


def _avg_val(run):
    x = run.results.get("average_val_loss")
    if x is None:
        x = float(np.mean(list(run.losses("val").values())))
    return float(x) if np.isfinite(x) else float("inf")  # a diverged val loss never wins the grid


def build_table(runs) -> dict:
    cells, setting_labels, skipped = collect(runs)
    if not cells:
        raise UsageError("no run with test results among the run directories given")
    settings = sorted(setting_labels, key=lambda s: (len(s), setting_labels[s]))
    strat = {s: _stats([r.average_test_perplexity() for r in cells["stratified"][s]])
             for s in settings if s in cells.get("stratified", {})}
    rows = []
    for label in sorted(cells, key=_row_rank):
        row = {"method": label, "cells": {}, "better_than_stratified": None}
        better, comparable = 0, 0
        for s in settings:
            if s not in cells[label]:
                continue
            runs_here = cells[label][s]
            st = _stats([r.average_test_perplexity() for r in runs_here])
            st["seeds"] = [r.seed for r in runs_here]
            if label != "stratified" and s in strat:
                st["delta"] = st["mean"] - strat[s]["mean"]
                comparable += 1
                better += st["delta"] < 0
            if label == "grid search":
                st["mixture"] = dict(zip(s, runs_here[0].mixture()[[runs_here[0].groups.index(g) for g in s]]))
            row["cells"][setting_labels[s]] = st
        if label != "stratified" and comparable:
            row["better_than_stratified"] = better
        rows.append(row)
    return {"settings": [setting_labels[s] for s in settings], "rows": rows, "skipped": skipped,
            "std": "sample standard deviation over seeds (ddof=1)"}


def probe_signal(runs) -> list:
    """What Aioli's probes saw, per setting: each group's mean `score_t` (the t statistic of its centred score,
    recorded per round in aioli.json) over every round of every Aioli run, with its standard error. Near 0
    the probes do not see a mixture effect whatever a sweep finds; the noise gate moves p only beyond
    --aioli_noise_z. Runs without aioli.json or without score_t (older runs) are left out."""
    by_setting = {}
    for run in runs:
        if run.method != "aioli" or run.parent:
            continue
        path = os.path.join(run.path, "aioli.json")
        if not os.path.exists(path):
            continue
        rounds = read_json(path, "Aioli record").get("rounds") or []
        values = [r["score_t"] for r in rounds if r.get("score_t") and None not in r["score_t"]]
        if values:
            entry = by_setting.setdefault(_setting(run), {"groups": run.groups, "runs": 0, "t": []})
            entry["runs"] += 1
            entry["t"] += [dict(zip(run.groups, v)) for v in values]
    out = []
    for key in sorted(by_setting, key=lambda s: (len(s), s)):
        entry = by_setting[key]
        t = np.array([[row[g] for g in entry["groups"]] for row in entry["t"]])
        se = t.std(axis=0, ddof=1) / np.sqrt(len(t)) if len(t) > 1 else np.full(t.shape[1], np.nan)
        out.append({"setting": "/".join(entry["groups"]), "runs": entry["runs"], "rounds": len(t),
                    "mean_t": dict(zip(entry["groups"], t.mean(axis=0).tolist())),
                    "se": dict(zip(entry["groups"], se.tolist()))})
    return out


def render_probe_signal(rows) -> str:
    if not rows:
        return ""
    lines = ["", "## What Aioli's probes saw", "",
             "Mean t statistic of each group's centred score over every round of every Aioli run (`score_t` in "
             "aioli.json), ± standard error. A group the probes find worth more than the others has t > 0; within "
             "two standard errors of 0 the probes saw no mixture effect (whatever a sweep finds), and the noise gate "
             "moves the mixture only where a round's |t| exceeds --aioli_noise_z.", "",
             "| setting | runs | rounds | mean t per group |", "|---|---|---|---|"]
    for row in rows:
        cells = ", ".join(f"{g} {row['mean_t'][g]:+.2f}" + ("" if np.isnan(row["se"][g]) else f" ± {row['se'][g]:.2f}")
                          for g in row["mean_t"])
        lines.append(f"| {row['setting']} | {row['runs']} | {row['rounds']} | {cells} |")
    return "\n".join(lines) + "\n"


def _cell(st, label):
    if st is None:
        return "–"
    if label != "stratified" and "delta" in st:
        text = f"{st['delta']:+.3f}"
    else:
        text = f"{st['mean']:.3f}" + ("" if label == "stratified" else " (abs.)")
    if st["std"] is not None:
        text += f" ± {st['std']:.3f}"
    return text


def render_markdown(table) -> str:
    header = ["method"] + table["settings"] + ["better than stratified"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table["rows"]:
        label = row["method"]
        cells = [_cell(row["cells"].get(s), label) for s in table["settings"]]
        better = "-" if row["better_than_stratified"] is None else str(row["better_than_stratified"])
        lines.append("| " + " | ".join([label] + cells + [better]) + " |")
    notes = ["", "Average test perplexity (mean over groups of exp(test loss)); stratified absolute, other rows "
             "the difference from stratified (negative = better); ± sample std over seeds."]
    if table["skipped"]:
        notes.append("Left out: " + ", ".join(f"{n} {why}" for why, n in table["skipped"].items()) + ".")
    return "\n".join(lines + notes) + "\n"


def _safe(name):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"


def write_plots(runs, folder) -> list:
    """Per run: weights trajectory, validation curves, A heatmaps (Aioli); per setting with a sweep of at
    least 3 mixtures: the static law fitted to the sweep's validation losses against the observations."""
    from . import plots
    from .laws import fit_static
    from .runs import static_runs
    from .tables import table_from_runs

    written, used = [], set()
    for run in runs:
        base = _safe(run.name)
        while base in used:
            base += "_"
        used.add(base)
        for kind, fn in (("weights", plots.plot_weights), ("val_loss", plots.plot_val_loss), ("A", plots.plot_A)):
            path = fn(run, os.path.join(folder, f"{base}_{kind}.png"))
            if path:
                written.append(path)
    sweeps = {}
    for run in static_runs(runs, "val")[0]:
        if not run.config.get("custom_name"):  # sweep points, the uniform one included
            sweeps.setdefault(_setting(run), []).append(run)
    for key, sweep in sweeps.items():
        table = table_from_runs(sweep, "val")
        if len(np.unique(np.round(table.X, 6), axis=0)) < 3:
            continue
        fits = fit_static(table, loo=False)
        written.append(plots.plot_law_fit(table, fits, os.path.join(folder, f"law_fit_{_safe('_'.join(key))}.png"),
                                          f"static law on the {'/'.join(key)} sweep (val loss)"))
    return written


def build_parser(prog="python -m analysis.report"):
    p = OneLineArgumentParser(prog=prog, description="Table-2 style Markdown report and plots from run directories")
    p.add_argument("run_dirs", nargs="+", help="run directories, or directories holding them")
    p.add_argument("--output", default="report.md", help="Markdown file to write (default: report.md)")
    p.add_argument("--plots", default=None, help="folder for PNG plots (default: no plots)")
    p.add_argument("--json", default=None, help="also write the table's numbers as JSON")
    return p


@exit_on_usage_error
def main(argv=None, prog="python -m analysis.report"):
    args = build_parser(prog).parse_args(argv)
    runs = find_runs(args.run_dirs, "run directory")
    table = build_table(runs)
    signal = probe_signal(runs)
    table["aioli_probe_signal"] = signal
    text = render_markdown(table) + render_probe_signal(signal)
    written = write_plots(runs, args.plots) if args.plots else []
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text + embedded_plots(written, os.path.dirname(os.path.abspath(args.output))))
    if args.json:
        write_json(args.json, jsonable(table))
    print(text, end="")
    print(f"wrote {args.output} ({len(runs)} runs, {len(table['rows'])} methods, {len(table['settings'])} settings)")
    if args.plots:
        print(f"wrote {len(written)} plots to {args.plots} (embedded in {args.output})")
    return 0


def embedded_plots(paths, page_dir) -> str:
    """A Markdown section showing the PNGs, linked relative to the page so that the folder can be moved."""
    if not paths:
        return ""
    lines = ["", "## Plots", ""]
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        lines.append(f"![{name}]({os.path.relpath(path, page_dir)})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

"""Offline analysis of training runs: mixing-law fitting, grid-search winners, skills graphs, Dirichlet
covers, LightGBM predictors, method-parameter fidelity, the Table-2 report and plots.

Modules (each usable on its own; `mixing_law_fitting.py` is a thin CLI over them):

- `common`: JSON without NaN, r2 / Spearman / MAE, column globs.
- `tables`: a `Table` of mixtures and losses from CSV files or run directories.
- `runs`: reading run directories (config.json, results.json, see docs/formats.md).
- `laws`: the static log-linear law and the linear dynamic law, fits and the optimum on the simplex.
- `regression`: a LightGBM predictor per target (as in RegMix) and its sampled optimum.
- `sweeps`: grid-search winner, skills graph, parent/child data for the dynamic law.
- `cover`: well-spread mixtures for sweeps.
- `fidelity`: each method's own A^t against the A* fitted from sweeps.
- `report`: the Markdown table (`python -m analysis.report`), `plots`: PNG figures.

Training code never imports this package (it pulls in scipy, matplotlib and lightgbm lazily).
"""

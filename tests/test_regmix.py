"""Mixing-law fitting on real results: RegMix's 512 1M-parameter proxy runs (train) and 256 unseen
mixtures (test), in shared/data/regmix beside the repository (see its README)."""
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data", "regmix")
TARGET = "metric/the_pile_pile_cc_val_loss"

pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(DATA, "train_mixture_1m.csv")),
                                reason=f"RegMix data not found at {os.path.normpath(DATA)} (shared/ beside the clone)")


def _args(command, out, *extra):
    d = lambda f: os.path.join(DATA, f)  # noqa: E731
    return [command, "--csv", d("train_mixture_1m.csv"), d("train_pile_loss_1m.csv"), "--join", "index",
            "--mixture_columns", "train_the_pile_*", "--loss_columns", TARGET,
            "--eval_csv", d("test_mixture_1m.csv"), d("test_pile_loss_1m.csv"), "--output", str(out), *extra]


def test_linreg_ranks_unseen_runs(tmp_path, capsys):
    from mixing_law_fitting import main

    out = tmp_path / "linreg.json"
    assert main(_args("linreg", out)) == 0
    res = json.loads(out.read_text())
    fit = res["groups"][TARGET]
    assert len(res["mixture_columns"]) == 17 and res["n_rows"] == 512
    assert res["evaluation"][TARGET]["spearman"] >= 0.9      # published log-linear: ~0.95-0.96
    assert res["evaluation"][TARGET]["mae"] < 0.1
    assert fit["r2"] > 0.85 and fit["loo_mae"] >= fit["mae"]
    assert sum(res["optimal_mixture"].values()) == pytest.approx(1.0)
    assert res["predicted_objective"] <= res["best_played"]["predicted_objective"] + 1e-9
    assert "Spearman" in capsys.readouterr().out


def test_regression_ranks_unseen_runs(tmp_path):
    from mixing_law_fitting import main

    out = tmp_path / "regression.json"
    assert main(_args("regression", out, "--folds", "0", "--samples", "5000")) == 0
    res = json.loads(out.read_text())
    assert res["evaluation"][TARGET]["spearman"] >= 0.95     # published LightGBM: 0.989
    assert res["evaluation"][TARGET]["mae"] < 0.06
    mix = res["optimal_mixture"]
    assert sum(mix.values()) == pytest.approx(1.0) and max(mix, key=mix.get) == "train_the_pile_pile_cc"

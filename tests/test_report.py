"""The Table-2 style report on fabricated runs (numbers computed by hand) and its plots."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from fabricate import write_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
S1, S2 = ["arxiv", "stackexchange"], ["arxiv", "book", "stackexchange"]

# average test perplexity per (setting, method label) for seeds 0 and 1; each run gets per-group
# perplexities spread symmetrically around the average, so the mean over groups is exactly this
AVG_PPL = {
    ("s1", "stratified"): (17.0, 18.0), ("s1", "aioli"): (17.0, 17.2), ("s1", "doremi_final"): (18.0, 18.4),
    ("s2", "stratified"): (30.0, 32.0), ("s2", "aioli"): (30.5, 30.9), ("s2", "doremi_final"): (30.0, 30.2),
}


def _test_losses(groups, avg):
    spread = [-1.0, 1.0] if len(groups) == 2 else [-1.0, 0.0, 1.0]
    return [math.log(avg + s) for s in spread]


def _fabricate(root, with_extras=False):
    for (setting, label), values in AVG_PPL.items():
        groups = S1 if setting == "s1" else S2
        k = len(groups)
        for seed, avg in enumerate(values):
            kw = {"method": "aioli"} if label == "aioli" else {"method": "static"}
            weights = [1.0 / k] * k
            if label == "doremi_final":
                kw["custom_name"] = "doremi_final"
                weights = [0.6] + [0.4 / (k - 1)] * (k - 1)
            hist = [(0, [10.0] * k), (50, [4.0 + 0.1 * i for i in range(k)]), (100, [3.0 + 0.1 * i for i in range(k)])]
            traj, art = None, {}
            if label == "aioli":
                traj = [{"step": 0, "weights": dict(zip(groups, weights))},
                        {"step": 50, "weights": dict(zip(groups, [0.3] + [0.7 / (k - 1)] * (k - 1)))}]
                art["aioli.json"] = {"groups": groups, "rounds": [
                    {"step": s, "A": [[0.1 * (i == j) + 0.01 * s for j in range(k)] for i in range(k)]} for s in (0, 50)]}
            write_run(root, f"{setting}_{label}_seed{seed}", groups, weights, seed=seed, val_history=hist,
                      val_loss=hist[-1][1], test_loss=_test_losses(groups, avg), weights_trajectory=traj,
                      artefacts=art, **kw)
    if with_extras:
        # a sweep in setting s1 (the stratified runs, val loss 3.0/3.1, are grid points too): the mixture
        # with the lowest mean val loss, 0.3, wins the grid search
        for p, val, ppl in ((0.1, 3.5, 20.0), (0.3, 2.9, 16.5), (0.6, 3.2, 16.0), (0.7, 3.4, 19.0), (0.9, 3.9, 21.0)):
            for seed in (0, 1):
                write_run(root, f"sweep_{p}_seed{seed}", S1, [p, 1 - p], seed=seed,
                          val_loss=[val + 0.1 * (p - 0.5) ** 2, val + 0.2 * p],
                          test_loss=_test_losses(S1, ppl + 0.2 * seed))
        write_run(root, "parent", S1, [0.5, 0.5], status="break", val_loss=[3.0, 3.0], step=50)
        write_run(root, "child", S1, [0.2, 0.8], parent={"path": "parent", "step": 50},
                  val_loss=[2.9, 2.8], test_loss=[2.9, 2.8])


def test_report_rows_and_numbers(tmp_path):
    from analysis.report import build_table, render_markdown
    from analysis.runs import find_runs

    _fabricate(tmp_path / "runs")
    table = build_table(find_runs([str(tmp_path / "runs")]))
    assert table["settings"] == ["arxiv/stackexchange", "arxiv/book/stackexchange"]
    rows = {r["method"]: r for r in table["rows"]}
    assert [r["method"] for r in table["rows"]] == ["stratified", "doremi_final", "aioli"]
    s1, s2 = table["settings"]
    strat = rows["stratified"]["cells"]
    assert strat[s1]["mean"] == pytest.approx(17.5) and strat[s1]["std"] == pytest.approx(math.sqrt(0.5))
    assert strat[s2]["mean"] == pytest.approx(31.0) and strat[s2]["std"] == pytest.approx(math.sqrt(2.0))
    aioli, doremi = rows["aioli"]["cells"], rows["doremi_final"]["cells"]
    assert aioli[s1]["delta"] == pytest.approx(-0.4) and aioli[s1]["std"] == pytest.approx(0.1 * math.sqrt(2))
    assert aioli[s2]["delta"] == pytest.approx(-0.3) and aioli[s2]["std"] == pytest.approx(0.2 * math.sqrt(2))
    assert doremi[s1]["delta"] == pytest.approx(0.7) and doremi[s2]["delta"] == pytest.approx(-0.9)
    assert aioli[s1]["seeds"] == [0, 1]
    assert rows["aioli"]["better_than_stratified"] == 2 and rows["doremi_final"]["better_than_stratified"] == 1
    md = render_markdown(table).splitlines()
    assert md[0] == "| method | arxiv/stackexchange | arxiv/book/stackexchange | better than stratified |"
    assert md[2] == "| stratified | 17.500 ± 0.707 | 31.000 ± 1.414 | - |"
    assert md[3] == "| doremi_final | +0.700 ± 0.283 | -0.900 ± 0.141 | 1 |"
    assert md[4] == "| aioli | -0.400 ± 0.141 | -0.300 ± 0.283 | 2 |"


def test_report_cli_grid_search_and_plots(tmp_path, capsys):
    from mixing_law_fitting import main

    _fabricate(tmp_path / "runs", with_extras=True)
    out, plots, js = tmp_path / "report.md", tmp_path / "plots", tmp_path / "report.json"
    assert main(["report", str(tmp_path / "runs"), "--output", str(out), "--plots", str(plots),
                 "--json", str(js)]) == 0
    table = json.loads(js.read_text())
    grid = {r["method"]: r for r in table["rows"]}["grid search"]
    cell = grid["cells"]["arxiv/stackexchange"]
    assert cell["mixture"] == {"arxiv": 0.3, "stackexchange": 0.7}
    assert cell["mean"] == pytest.approx(16.6) and cell["delta"] == pytest.approx(16.6 - 17.5)
    assert table["skipped"] == {"children of dynamic sweeps": 1, "runs without test results (status break)": 1}
    assert "grid search" in out.read_text() and "Left out" in out.read_text()
    names = sorted(os.listdir(plots))
    for expected in ("s1_aioli_seed0_A.png", "s1_aioli_seed0_weights.png", "s2_doremi_final_seed1_val_loss.png",
                     "law_fit_arxiv_stackexchange.png"):
        assert expected in names
    # A heatmaps only for Aioli; no weights plot for a mixture that never changes
    assert "s1_stratified_seed0_A.png" not in names and "s1_stratified_seed0_weights.png" not in names
    for name in names:
        data = (plots / name).read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    page = out.read_text()  # the page embeds every plot, linked relative to itself
    assert sorted(line.split("](")[1].rstrip(")") for line in page.splitlines() if line.startswith("![")) == \
        [f"plots/{name}" for name in names]
    assert "wrote" in capsys.readouterr().out


def test_report_shows_what_aiolis_probes_saw(tmp_path):
    """score_t of every round of every Aioli run, per setting: mean and standard error by hand; runs without
    score_t (older records), other methods and a round without a noise estimate (nulls) are left out."""
    from mixing_law_fitting import main

    rounds = {0: [[-1.0, 1.0], [0.5, -0.5]], 1: [[-2.0, 2.0], [-0.5, 0.5]]}  # book's t: -1, 0.5, -2, -0.5
    pair = ["book", "wikipedia"]
    for seed, ts in rounds.items():
        records = [{"step": 10 * i, "score_t": t} for i, t in enumerate(ts)] + [{"step": 99, "score_t": [None, None]}]
        write_run(tmp_path, f"aioli_seed{seed}", pair, [0.5, 0.5], method="aioli", seed=seed, test_loss=[3.0, 3.2],
                  artefacts={"aioli.json": {"groups": pair, "rounds": records}})
        write_run(tmp_path, f"stratified_seed{seed}", pair, [0.5, 0.5], seed=seed, test_loss=[3.0, 3.1])
    old_record = {"groups": pair, "rounds": [{"step": 10, "A": [[1, 0], [0, 1]]}]}
    write_run(tmp_path, "aioli_old_seed2", pair, [0.5, 0.5], method="aioli", seed=2, test_loss=[3.0, 3.2],
              artefacts={"aioli.json": old_record})
    out, js = tmp_path / "r.md", tmp_path / "r.json"
    assert main(["report", str(tmp_path), "--output", str(out), "--json", str(js)]) == 0
    (row,) = json.loads(js.read_text())["aioli_probe_signal"]
    book = [-1.0, 0.5, -2.0, -0.5]
    se = float(np.std(book, ddof=1) / 2)
    assert row["setting"] == "book/wikipedia" and row["runs"] == 2 and row["rounds"] == 4
    assert row["mean_t"] == pytest.approx({"book": -0.75, "wikipedia": 0.75})
    assert row["se"] == pytest.approx({"book": se, "wikipedia": se})
    assert f"| book/wikipedia | 2 | 4 | book -0.75 ± {se:.2f}, wikipedia +0.75 ± {se:.2f} |" in out.read_text()


def test_report_module_entry_point(tmp_path):
    _fabricate(tmp_path / "runs")
    out = tmp_path / "r.md"
    proc = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path / "runs"), "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().splitlines()[2].startswith("| stratified | 17.500")
    bad = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path / "missing")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def _diverge(run_dir):
    """Rewrite results.json as the trainer writes a diverged run: NaN losses become null."""
    path = os.path.join(run_dir, "results.json")
    res = json.loads(open(path).read())
    for key in ("val_loss", "test_loss", "test_perplexity"):
        res[key] = {g: None for g in res[key]}
    res["average_val_loss"] = res["average_test_loss"] = res["average_test_perplexity"] = None
    with open(path, "w") as f:
        json.dump(res, f)


def test_diverged_runs_are_left_out_and_counted(tmp_path, capsys):
    """null (NaN) losses in results.json: the report and the sweep fits skip the run, naming why."""
    from analysis.report import build_table
    from analysis.runs import find_runs
    from mixing_law_fitting import main

    _fabricate(tmp_path / "runs")
    _diverge(write_run(tmp_path / "runs", "s1_aioli_seed2", S1, [0.5, 0.5], method="aioli", seed=2,
                       val_loss=[3.0, 3.0], test_loss=[3.0, 3.0]))
    for p in (0.2, 0.4, 0.6, 0.8):
        write_run(tmp_path / "runs" / "sweep", f"sweep_{p}", S1, [p, 1 - p], val_loss=[3.0 + p, 3.5 - p],
                  test_loss=[3.0, 3.0])
    _diverge(write_run(tmp_path / "runs" / "sweep", "sweep_diverged", S1, [0.1, 0.9], val_loss=[3.0, 3.0],
                       test_loss=[3.0, 3.0]))
    table = build_table(find_runs([str(tmp_path / "runs")]))
    assert table["skipped"] == {"runs with a non-finite test loss (diverged)": 2}
    aioli = {r["method"]: r for r in table["rows"]}["aioli"]["cells"]["arxiv/stackexchange"]
    assert aioli["seeds"] == [0, 1] and aioli["delta"] == pytest.approx(-0.4)
    out = tmp_path / "best.json"
    assert main(["best", "--run_dir", str(tmp_path / "runs" / "sweep"), "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["skipped_runs"] == {"non-finite val_loss (diverged)": 1} and res["n_mixtures"] == 4


def test_online_methods_rows_and_their_final_runs(tmp_path):
    """ODM's and ADO's online runs are results (rows odm, ado) as are their final static runs (odm_final,
    ado_final); they sit between DoGE and Aioli. A DoGE proxy is a helper and gets no row."""
    from analysis.report import build_table
    from analysis.runs import find_runs

    runs = {"stratified": ("static", None), "aioli": ("aioli", None), "doge_final": ("static", "doge_final"),
            "doge_proxy": ("doge", "doge_proxy"), "ado": ("ado", None), "odm_final": ("static", "odm_final"),
            "odm": ("odm", None), "ado_final": ("static", "ado_final")}
    for seed in range(2):
        for i, (name, (method, custom)) in enumerate(runs.items()):
            weights = [0.5, 0.5] if name == "stratified" else [0.3, 0.7]
            write_run(tmp_path, f"{name}_seed{seed}", S1, weights, method=method, seed=seed, custom_name=custom,
                      test_loss=[math.log(10.0 + i), math.log(12.0 + i)])
    table = build_table(find_runs([str(tmp_path)]))
    assert [r["method"] for r in table["rows"]] == ["stratified", "doge_final", "odm", "odm_final", "ado",
                                                    "ado_final", "aioli"]

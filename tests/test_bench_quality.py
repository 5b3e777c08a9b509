"""scripts/benchmarks/bench_quality.py without training: the table maths on fabricated results.json
files, Aioli's per-setting flags, the sweep points, the job graph and its reuse logic, bad input."""
import importlib.util
import json
import math
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# scripts/ is not a package: load the script from its path
_spec = importlib.util.spec_from_file_location("bench_quality",
                                               os.path.join(ROOT, "scripts", "benchmarks", "bench_quality.py"))
bq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bq)


def write_result(path, ppl, status="complete", weights=None):
    """A run directory whose results.json has the given average test perplexity (loss = log of it)."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "results.json"), "w") as fh:
        json.dump({"status": status, "average_test_perplexity": ppl, "average_test_loss": math.log(ppl),
                   "final_weights": weights}, fh)


def write_grid(out, setting, seed, winner, mixture):
    """grid_seed<S>.json as `mixing_law_fitting.py best` writes it (the keys the bench reads)."""
    with open(os.path.join(out, setting, f"grid_seed{seed}.json"), "w") as fh:
        json.dump({"runs": [winner], "proportions": mixture}, fh)


def test_aioli_flags_per_setting():
    for k, ohf, lp_steps, eta, windows in ((2, 0.625, 2, 2, 8), (3, 0.5, 1, 1, 4), (5, 0.4, 1, 1, 3)):
        flags = bq.aioli_flags(k, 300)
        assert int(bq.flag_value(flags, "--lp_eval_samples")) == windows
        evaluations = int(bq.flag_value(flags, "--lp_rounds")) * k + 1
        assert abs(evaluations * k * windows - bq.PROBE_EVAL_ROWS) <= evaluations * k / 2  # the nearest budget
        assert not any("{" in a for a in flags)
        assert float(bq.flag_value(flags, "--one_hot_factor")) == pytest.approx(ohf, abs=1e-3)
        assert int(bq.flag_value(flags, "--lp_steps")) == lp_steps
        assert float(bq.flag_value(flags, "--eta")) == eta
        probes = int(bq.flag_value(flags, "--lp_rounds")) * int(bq.flag_value(flags, "--lp_steps")) * k
        assert int(bq.flag_value(flags, "--update_steps")) == max(75, probes + 1)
    # a short run: the round is lengthened so that the probes fit in it
    flags = bq.aioli_flags(5, 24)
    probes = int(bq.flag_value(flags, "--lp_rounds")) * int(bq.flag_value(flags, "--lp_steps")) * 5
    assert int(bq.flag_value(flags, "--update_steps")) == max(6, probes + 1)


def test_sweep_points_drop_endpoints_and_uniform():
    grid = [[0.0, 1.0], [0.25, 0.75], [0.5, 0.5], [0.75, 0.25], [1.0, 0.0]]
    assert bq.sweep_points(grid) == [[0.25, 0.75], [0.75, 0.25]]
    assert bq.sweep_points([[0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]]) == [[0.2, 0.3, 0.5]]


def test_reuse_finished_and_restart_interrupted(tmp_path):
    done = bq.Task("a", [], str(tmp_path / "a" / "results.json"), str(tmp_path / "a"))
    write_result(done.run_dir, 10.0)
    assert bq.prepare_run_dir(done) and os.path.exists(done.done)
    broken = bq.Task("b", [], str(tmp_path / "b" / "results.json"), str(tmp_path / "b"))
    os.makedirs(os.path.join(broken.run_dir, "checkpoints"))
    assert not bq.prepare_run_dir(broken) and not os.path.exists(broken.run_dir)
    fit = bq.Task("f", [], str(tmp_path / "fit.json"))  # a fit: no run directory
    assert not bq.prepare_run_dir(fit)


def test_job_graph_runs_deps_first_and_skips_after_a_failure(tmp_path):
    t = {n: bq.Task(n, [], str(tmp_path / n)) for n in "abcde"}
    t["c"].deps = [t["a"], t["b"]]  # b fails -> c and its dependent d are skipped
    t["d"].deps = [t["c"]]
    t["e"].deps = [t["a"]]
    ran = []

    def fake(task):
        assert all(d.label in ran for d in task.deps)
        ran.append(task.label)
        return task.label != "b"

    ok = bq.run_tasks(list(t.values()), 2, execute=fake)
    assert sorted(ran) == ["a", "b", "e"]
    assert {n: ok[t[n].done] for n in t} == {"a": True, "b": False, "c": False, "d": False, "e": True}


def test_job_graph_takes_ready_dependents_before_later_independent_tasks(tmp_path):
    # plan order: a seed's first run, its fit (needs it), then the next seed's first run
    t = {n: bq.Task(n, [], str(tmp_path / n)) for n in ("run0", "fit0", "run1", "fit1")}
    t["fit0"].deps, t["fit1"].deps = [t["run0"]], [t["run1"]]
    ran = []
    bq.run_tasks(list(t.values()), 1, execute=lambda task: ran.append(task.label) or True)
    assert ran == ["run0", "fit0", "run1", "fit1"]


def test_table_maths(tmp_path):
    out = str(tmp_path)
    A, B = "arxiv_stackexchange", "github_wikipedia"  # two pairs (k=2)
    strat = {A: [100.0, 110.0, 120.0], B: [50.0, 52.0, 54.0]}
    aioli = {A: [98.0, 107.0, 116.0], B: [53.0, 55.0, 54.0]}  # better on A, worse on B
    for s in strat:
        for seed in range(3):
            write_result(os.path.join(out, s, f"stratified_seed{seed}"), strat[s][seed])
            write_result(os.path.join(out, s, f"aioli_seed{seed}"), aioli[s][seed])
            write_result(os.path.join(out, s, f"sweep_seed{seed}", "mix01"), strat[s][seed] - 5)
            write_grid(out, s, seed, "mix01", {"g1": 0.2 + 0.1 * seed, "g2": 0.8 - 0.1 * seed})
    write_result(os.path.join(out, A, "dml_final_seed0"), 1.0, status="break")  # unfinished: missing
    write_result(os.path.join(out, A, "doge_final_seed1"), 90.0)  # one seed only
    values, mixtures = bq.collect(out, [A, B], [0, 1, 2])
    table = bq.summarize(values, {A: 4, B: 4})
    cells, summary = table["cells"], table["summary"]
    c = cells["stratified"][A]
    assert (c["n"], c["mean_ppl"], c["sd_ppl"]) == (3, 110.0, 10.0)
    assert c["mean_loss"] == pytest.approx(sum(math.log(x) for x in strat[A]) / 3)
    c = cells["Aioli"][A]
    assert c["delta_ppl"] == pytest.approx(-3.0)
    assert c["paired_mean"] == pytest.approx(-3.0) and c["paired_se"] == pytest.approx(1 / math.sqrt(3))
    c = cells["Aioli"][B]  # diffs 3, 3, 0: mean 2, sd sqrt(3), se 1
    assert c["paired_mean"] == pytest.approx(2.0) and c["paired_se"] == pytest.approx(1.0)
    assert cells["grid"][A]["paired_mean"] == pytest.approx(-5.0)
    assert cells["DML"][A]["n"] == 0 and cells["DML"][A]["mean_ppl"] is None
    c = cells["DoGE"][A]
    assert (c["n"], c["paired_mean"], c["paired_se"]) == (1, -20.0, None)
    assert summary["Aioli"]["better"] == 1 and summary["Aioli"]["worse"] == 1
    assert summary["grid"]["better"] == 2 and summary["grid"]["worse"] == 0
    assert summary["DoGE"]["better"] == 1 and summary["DoGE"]["worse"] == 0  # one seed: no se, never "worse"
    assert summary["grid"]["extra_runs"] == {A: 4, B: 4}
    assert summary["DML"]["extra_runs"][A] == 5 and summary["Skill-it"]["extra_runs"][A] == 2
    assert summary["DoReMi"]["extra_runs"][A] == 1 and summary["Aioli"]["extra_runs"][A] == 0
    assert mixtures[A][2] == {"g1": pytest.approx(0.4), "g2": pytest.approx(0.6)}
    text = bq.render(table, mixtures, None, ["# t"], 3)
    assert "| Aioli | -3.0 (-3.0 ± 0.6) | +2.0 (+2.0 ± 1.0) | 1 | 1 | 0 |" in text
    assert "| DML | – | – | 0 | 0 | 5 |" in text and "[n=1]" in text


def test_plan_has_the_online_runs_and_their_final_runs(tmp_path):
    for steps in (240, 40):  # the full size and --quick
        plan = bq.Plan(str(tmp_path / str(steps)), steps, bq.SIZES["full"])
        bq.plan_setting(plan, "book_stackexchange", 0, bq.METHOD_CHOICES)
        tasks = {t.label.split("/", 1)[1]: t for t in plan.tasks.values()}
        for name in ("odm", "ado"):
            online, final = tasks[f"{name}_seed0"], tasks[f"{name}_final_seed0"]
            assert f"--{name}" in online.argv and online.deps == []
            assert final.deps == [online] and bq.flag_value(final.argv, "--sample_rule") == "mixture"
            assert bq.flag_value(final.argv, "--proportions_file") == os.path.join(online.run_dir, f"{name}.json")
        ado = tasks["ado_seed0"].argv
        schedule = [int(bq.flag_value(ado, f"--ado_{f}")) for f in ("ignore_steps", "start_step", "update_steps")]
        assert schedule == ([12, 60, 30] if steps == 240 else [2, 10, 5])
        # the first fit that has 4 points (every 10th step after the ignored ones) comes before the end
        first = next(t for t in range(schedule[1], steps + 1) if t % schedule[2] == 0
                     and len(range(schedule[0], t, 10)) >= 4)
        assert first < steps or steps == 40 and first == 35
    assert bq.extra_runs("ODM", 2, 4) == 0 and bq.extra_runs("ADO final", 2, 4) == 1


def test_recovery(tmp_path):
    assert bq.recovery(200.0, 150.0, 100.0) == pytest.approx(0.5)
    assert bq.recovery(200.0, 90.0, 100.0) == pytest.approx(1.1)
    assert bq.recovery(100.0, 90.0, 100.0) is None  # the prior is no worse than the best grid point
    out = str(tmp_path)
    for seed, (bad, best, strat, aioli) in enumerate([(200, 100, 120, 150), (300, 100, 140, 100)]):
        write_result(os.path.join(out, "restricted", f"bad_prior_seed{seed}"), bad)
        write_result(os.path.join(out, "restricted", f"aioli_restricted_seed{seed}"), aioli,
                     weights={"g1": 0.2 + 0.2 * seed, "g2": 0.8 - 0.2 * seed})
        write_result(os.path.join(out, "ref", f"stratified_seed{seed}"), strat)
        write_result(os.path.join(out, "ref", f"sweep_seed{seed}", "mix02"), best)
        write_grid(out, "ref", seed, "mix02", {"g1": 0.5, "g2": 0.5})
    rows = bq.summarize_restricted(bq.collect_restricted(out, "ref", [0, 1]))
    assert rows["aioli_restricted"]["recovery"] == {0: pytest.approx(0.5), 1: pytest.approx(1.0)}
    assert rows["aioli_restricted"]["mean_recovery"] == pytest.approx(0.75)
    assert rows["stratified"]["recovery"] == {0: pytest.approx(0.8), 1: pytest.approx(0.8)}
    assert rows["probes_only"]["n"] == 0 and rows["probes_only"]["mean_recovery"] is None
    assert rows["best_grid"]["mean_ppl"] == 100.0
    assert rows["aioli_restricted"]["final_weights"] == pytest.approx({"g1": 0.3, "g2": 0.7})
    # the restricted setting alone: its table and no empty per-setting tables
    empty = bq.summarize({}, {})  # no setting but the restricted one
    text = bq.render(empty, {}, {"info": "groups of ref", "rows": rows}, ["# t"], 2)
    assert "## Restricted setting" in text and "g1 0.30, g2 0.70" in text and "against stratified" not in text


def test_methods_choose_the_runs_and_the_table_rows(tmp_path):
    def planned(methods):
        plan = bq.Plan(str(tmp_path / "_".join(methods)), 240, bq.SIZES["full"])
        bq.plan_setting(plan, "book_stackexchange", 0, methods)
        return {t.label.split("/", 1)[1] for t in plan.tasks.values()}
    refs = {"stratified_seed0", "grid_seed0.json"} | {f"sweep_seed0/mix{i:02d}" for i in range(1, 5)}
    paper = planned(bq.PAPER_METHODS)
    assert refs <= paper and not {"odm_seed0", "ado_seed0", "odm_final_seed0", "ado_final_seed0"} & paper
    assert {"dml_final_seed0", "skillit_seed0", "doremi_final_seed0", "doge_final_seed0", "aioli_seed0"} <= paper
    assert planned(["ODM"]) == refs | {"odm_seed0", "odm_final_seed0"}  # the references always run
    assert planned(["Aioli"]) == refs | {"aioli_seed0"}
    assert bq.table_methods(["Aioli", "ADO"]) == ["stratified", "grid", "ADO", "ADO final", "Aioli"]
    # the table has a row for each chosen method and none for the others
    out = str(tmp_path / "out")
    for seed in range(2):
        write_result(os.path.join(out, "book_stackexchange", f"stratified_seed{seed}"), 100.0 + seed)
        write_result(os.path.join(out, "book_stackexchange", f"aioli_seed{seed}"), 99.0 + seed)
        write_result(os.path.join(out, "book_stackexchange", f"odm_seed{seed}"), 101.0 + seed)
    values, mixtures = bq.collect(out, ["book_stackexchange"], [0, 1], bq.table_methods(["Aioli"]))
    text = bq.render(bq.summarize(values, {"book_stackexchange": 4}), mixtures, None, ["# t"], 2)
    assert "| Aioli | -1.0 (-1.0 ± 0.0) |" in text and "| ODM" not in text and "| DoGE" not in text


def test_a_finished_run_with_other_flags_is_refused_not_reused(tmp_path, capsys):
    out = str(tmp_path)
    plan = bq.Plan(out, 240, bq.SIZES["full"])
    bq.plan_setting(plan, "book_stackexchange", 0, ["Aioli"])
    tasks = {t.label.split("/", 1)[1]: t for t in plan.tasks.values()}
    aioli = tasks["aioli_seed0"]
    recorded = json.loads(json.dumps(vars(bq.MAIN_PARSER.parse_args(aioli.argv[2:]))))
    recorded.update(precision="fp32", method="aioli", sample_rule="stratified")  # resolved by main.py
    del recorded["fsdp"]  # a flag main.py gained after the run: not a difference
    write_result(aioli.run_dir, 99.0)
    with open(os.path.join(aioli.run_dir, "config.json"), "w") as fh:
        json.dump(recorded, fh)
    assert bq.recorded_differences(aioli) == []
    bq.refuse_stale_runs(list(plan.tasks.values()), out)  # the same flags: reused
    recorded.update(eta=1.0, lp_steps=1)  # the run of an earlier recipe
    with open(os.path.join(aioli.run_dir, "config.json"), "w") as fh:
        json.dump(recorded, fh)
    assert sorted(bq.recorded_differences(aioli)) == [("eta", 1.0, 2.0), ("lp_steps", 1, 2)]
    argv = ["--settings", "book_stackexchange", "--seeds", "0", "--methods", "Aioli", "--output_dir", out,
            "--report_only"]
    with pytest.raises(SystemExit) as err:
        bq.main(argv)
    message = capsys.readouterr().err.strip()
    assert err.value.code == 2 and message.count("\n") == 0
    assert "book_stackexchange/aioli_seed0: --eta 1.0 -> 2.0; --lp_steps 1 -> 2" in message
    assert not os.path.exists(os.path.join(out, "table.md"))  # nothing written
    # the stratified run is DoReMi's reference: a finished one without its saved model is not enough
    strat = tasks["stratified_seed0"]
    write_result(strat.run_dir, 100.0)
    with open(os.path.join(strat.run_dir, "config.json"), "w") as fh:
        json.dump(json.loads(json.dumps(vars(bq.MAIN_PARSER.parse_args(strat.argv[2:])))), fh)
    assert bq.recorded_differences(strat) == [("save_model", "no model/", True)]


def test_a_benchmark_folder_moved_whole_is_still_reused(tmp_path):
    out = str(tmp_path / "now")
    plan = bq.Plan(out, 240, bq.SIZES["full"])
    bq.plan_setting(plan, "book_stackexchange", 0, ["DML"])
    final = {t.label.split("/", 1)[1]: t for t in plan.tasks.values()}["dml_final_seed0"]
    recorded = json.loads(json.dumps(vars(bq.MAIN_PARSER.parse_args(final.argv[2:]))))
    before = str(tmp_path / "before")  # where the folder was when the run was made
    recorded["output_dir"] = recorded["output_dir"].replace(out, before)
    recorded["proportions_file"] = recorded["proportions_file"].replace(out, before)
    write_result(final.run_dir, 99.0)
    with open(os.path.join(final.run_dir, "config.json"), "w") as fh:
        json.dump(recorded, fh)
    assert bq.recorded_differences(final) == []
    # a file outside the folder it was made in is another input, moved or not
    recorded["proportions_file"] = "/elsewhere/dml_fit_seed0.json"
    with open(os.path.join(final.run_dir, "config.json"), "w") as fh:
        json.dump(recorded, fh)
    assert bq.recorded_differences(final) == [("proportions_file", "/elsewhere/dml_fit_seed0.json",
                                               os.path.join(out, "book_stackexchange", "dml_fit_seed0.json"))]


def test_other_data_reaches_every_run_and_a_demo_run_is_not_reused_for_it(tmp_path):
    data = tmp_path / "heldout"
    data.mkdir()
    args = bq.parse_args(["--data", str(data), "--tokenizer", "gpt2", "--settings", "book_stackexchange"])
    assert args.data_flags == ["--train_data_dir", str(data), "--val_data_dir", str(data), "--tokenizer", "gpt2"]
    out = str(tmp_path / "bench")
    plan = bq.Plan(out, 240, bq.SIZES["full"], args.data_flags)
    bq.plan_setting(plan, "book_stackexchange", 0, ["Aioli", "DML"])
    runs = [t for t in plan.tasks.values() if t.run_dir]  # the training runs (fits read their results)
    assert runs and all(t.argv[t.argv.index("--train_data_dir") + 1] == str(data) for t in runs)
    strat = next(t for t in runs if t.label.endswith("/stratified_seed0"))
    demo_plan = bq.Plan(out, 240, bq.SIZES["full"])  # the same folder, made on the demo corpus
    bq.plan_setting(demo_plan, "book_stackexchange", 0, [])
    demo = next(t for t in demo_plan.tasks.values() if t.label.endswith("/stratified_seed0"))
    recorded = json.loads(json.dumps(vars(bq.MAIN_PARSER.parse_args(demo.argv[2:]))))
    write_result(strat.run_dir, 99.0)
    with open(os.path.join(strat.run_dir, "config.json"), "w") as fh:
        json.dump(recorded, fh)
    changed = {name for name, _, _ in bq.recorded_differences(strat)}
    assert {"train_data_dir", "val_data_dir", "tokenizer"} <= changed


@pytest.mark.parametrize("argv", [["--settings", "nope"], ["-j", "0"], ["--steps", "2"], ["--prior", "1"],
                                  ["--methods", "uniform"], ["--tokenizer", "gpt2"], ["--data", "/no/such/dir"]])
def test_bad_input_is_one_line_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as err:
        bq.main(argv)
    assert err.value.code == 2
    assert capsys.readouterr().err.strip().count("\n") == 0

"""mixing_law_fitting.py subcommands on fabricated run directories (docs/formats.md), and bad inputs."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fabricate import write_run
from mixing_law_fitting import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
G3 = ["a", "b", "c"]


def _fails(argv, capsys, needle):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and err[0].startswith("error:"), err
    assert needle in err[0], err[0]


def test_skills_graph(tmp_path, capsys):
    L0 = [10.0, 8.0, 5.0]
    end = {"a": [4.0, 6.0, 4.0], "b": [9.0, 2.0, 4.5], "c": [8.0, 7.0, 1.0]}
    for i, g in enumerate(G3):
        onehot = [1.0 if j == i else 0.0 for j in range(3)]
        # the final evaluation (results val_loss at the last step) is the graph's end point
        write_run(tmp_path / "onehot", f"only_{g}", G3, onehot, val_history=[(0, L0), (50, [7.0] * 3)],
                  val_loss=end[g], step=100)
    out = tmp_path / "graph.json"
    assert main(["skills_graph", "--run_dir", str(tmp_path / "onehot"), "--output", str(out),
                 "--npy", str(tmp_path / "graph.npy")]) == 0
    res = json.loads(out.read_text())
    expected = [[(L0[j] - end[g][j]) / L0[j] for j in range(3)] for g in G3]
    assert res["groups"] == G3 and res["orientation"] == "rows = trained group, columns = evaluated group"
    np.testing.assert_allclose(res["graph"], expected)
    np.testing.assert_allclose(np.load(tmp_path / "graph.npy", allow_pickle=False), expected)
    assert main(["skills_graph", "--run_dir", str(tmp_path / "onehot"), "--end", "50", "--output", str(out)]) == 0
    np.testing.assert_allclose(json.loads(out.read_text())["graph"][0], [0.3, 0.125, -0.4])
    # interior sweep points and other methods beside the one-hot runs are ignored
    write_run(tmp_path / "onehot", "mixed", G3, [0.5, 0.5, 0.0], val_history=[(0, L0)], val_loss=L0)
    write_run(tmp_path / "onehot", "aioli", G3, [1.0, 0, 0], method="aioli", val_history=[(0, L0)], val_loss=L0)
    assert main(["skills_graph", "--run_dir", str(tmp_path / "onehot"), "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    np.testing.assert_allclose(res["graph"], expected)
    assert res["ignored_runs"] == 2 and "ignored 2 run(s)" in capsys.readouterr().out
    write_run(tmp_path / "mixed_only", "mixed", G3, [0.5, 0.5, 0.0], val_history=[(0, L0)], val_loss=L0)
    _fails(["skills_graph", "--run_dir", str(tmp_path / "mixed_only")], capsys, "no one-hot static run")
    write_run(tmp_path / "two", "only_a", G3, [1, 0, 0], val_history=[(0, L0)], val_loss=L0)
    _fails(["skills_graph", "--run_dir", str(tmp_path / "two")], capsys, "no one-hot run trained on b, c")


def test_best_averages_seeds(tmp_path, capsys):
    # mixture (0.2, 0.8): seeds 3.0 and 3.4 (mean 3.2); (0.6, 0.4): seeds 3.1 and 3.2 (mean 3.15) -> wins
    for p, per_seed in ((0.2, (3.0, 3.4)), (0.6, (3.1, 3.2)), (0.9, (3.5, 3.6))):
        for seed, avg in enumerate(per_seed):
            write_run(tmp_path / "sweep", f"p{p}_s{seed}", ["x", "y"], [p, 1 - p], seed=seed,
                      val_loss=[avg - 0.1, avg + 0.1], test_loss=[avg, avg])
    write_run(tmp_path / "sweep", "aioli", ["x", "y"], [0.5, 0.5], method="aioli", val_loss=[1.0, 1.0])
    out = tmp_path / "best.json"
    assert main(["best", "--run_dir", str(tmp_path / "sweep"), "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["proportions"] == pytest.approx({"x": 0.6, "y": 0.4})
    assert res["objective_val_loss"] == pytest.approx(3.15) and res["n_seeds"] == 2
    assert res["skipped_runs"] == {"method aioli": 1}
    assert "--proportions 0.6 0.4" in capsys.readouterr().out
    assert main(["best", "--run_dir", str(tmp_path / "sweep"), "--target", "y", "--split", "test",
                 "--output", str(out)]) == 0
    assert json.loads(out.read_text())["proportions"] == pytest.approx({"x": 0.6, "y": 0.4})


def test_dynamic_recovers_A(tmp_path):
    A = np.array([[0.30, 0.05, 0.00], [0.10, 0.40, 0.05], [0.00, 0.10, 0.20]])
    rng = np.random.default_rng(0)
    for par in range(2):
        start = np.array([3.0, 3.5, 4.0]) + 0.1 * par
        parent = write_run(tmp_path / "parents", f"parent{par}", G3, [1 / 3] * 3, status="break", step=200,
                           val_history=[(0, [10.0] * 3), (200, start)], val_loss=start)
        for c in range(5):
            p = rng.dirichlet(np.ones(3))
            # half the children name a checkpoint folder inside the parent, as --resume_model_path allows
            ppath = parent if c % 2 else os.path.join(parent, "checkpoints", "step_00000200")
            write_run(tmp_path / "children", f"child{par}_{c}", G3, p, step=300,
                      parent={"path": ppath, "step": 200}, val_loss=start - A @ p)
    out = tmp_path / "dyn.json"
    assert main(["dynamic", "--run_dir", str(tmp_path / "children"), "--per_parent", "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    np.testing.assert_allclose(res["A"], A, atol=1e-9)
    assert all(m["r2"] == pytest.approx(1.0) for m in res["groups_fit"].values())
    assert res["n_children"] == 10 and len(res["per_parent"]) == 2 and res["parent_steps"] == [200]


def test_cover_files_seeded(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["cover", "--k", "3", "--n", "9", "--seed", "4", "--output", str(a)]) == 0
    assert main(["cover", "--k", "3", "--n", "9", "--seed", "4", "--output", str(b)]) == 0
    mix = json.loads(a.read_text())
    assert mix == json.loads(b.read_text()) and len(mix) == 9
    lines = (tmp_path / "a.txt").read_text().splitlines()
    assert len(lines) == 9 and all(abs(sum(map(float, ln.split(","))) - 1) < 1e-5 for ln in lines)
    assert main(["cover", "--k", "2", "--grid", "0.1", "--output", str(tmp_path / "g.json")]) == 0
    assert len(json.loads((tmp_path / "g.json").read_text())) == 11
    _fails(["cover", "--k", "3"], capsys, "--n")


def test_bad_inputs_exit_2_one_line(tmp_path, capsys):
    _fails(["linreg", "--run_dir", str(tmp_path / "nope")], capsys, "is not a directory")
    (tmp_path / "empty").mkdir()
    _fails(["linreg", "--run_dir", str(tmp_path / "empty")], capsys, "holds no run directory")
    mix, loss = tmp_path / "mix.csv", tmp_path / "loss.csv"
    mix.write_text("index,w_a,w_b\n1,0.5,0.5\n2,0.2,0.8\n3,0.9,0.1\n")
    loss.write_text("index,l_a,l_b\n1,3.0,3.1\n2,3.2,3.0\n4,2.9,3.3\n")
    _fails(["linreg", "--csv", str(mix), str(loss), "--join", "index"], capsys, "keys differ")
    _fails(["linreg", "--csv", str(mix), str(loss), "--join", "idx"], capsys, "--join idx")
    loss.write_text("index,l_a,l_b\n1,3.0,3.1\n2,3.2,3.0\n3,2.9,3.3\n")
    _fails(["linreg", "--csv", str(mix), str(loss), "--join", "index", "--mixture_columns", "train_*"],
           capsys, "--mixture_columns train_* matches no column")
    _fails(["regression", "--csv", str(mix), "--mixture_columns", "w_*"], capsys, "--loss_columns")
    _fails(["linreg", "--csv", str(mix), str(loss), "--join", "index", "--target", "zz"], capsys, "--target zz")
    _fails([], capsys, "mixing_law_fitting.py")
    _fails(["linreg", "--bogus"], capsys, "unrecognized arguments")
    _fails(["dynamic", "--run_dir", str(tmp_path / "empty2")], capsys, "is not a directory")


def test_linreg_on_runs_and_subprocess_entry_point(tmp_path):
    truth = {"x": (2.0, 0.5, np.array([-1.0, 1.0])), "y": (2.5, 0.4, np.array([0.8, -0.8]))}
    for i, p in enumerate(np.linspace(0.05, 0.95, 7)):
        mix = np.array([p, 1 - p])
        write_run(tmp_path / "sweep", f"r{i}", ["x", "y"], mix,
                  val_loss=[c + k * np.exp(mix @ t) for c, k, t in truth.values()])
    # a parent stopped mid-run and its child: their losses would spoil the exact fit if they were used
    parent = write_run(tmp_path / "sweep", "parent", ["x", "y"], [0.5, 0.5], status="break", val_loss=[9.0, 9.0])
    write_run(tmp_path / "sweep", "child", ["x", "y"], [0.2, 0.8], parent={"path": parent, "step": 100},
              val_loss=[1.0, 1.0])
    out = tmp_path / "lin.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "mixing_law_fitting.py"), "linreg", "--run_dir",
                           str(tmp_path / "sweep"), "--output", str(out), "--plot", str(tmp_path / "fit.png")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["skipped_runs"] == {"status break": 1, "child of a dynamic sweep": 1}
    for g, (c, k, t) in truth.items():
        assert res["groups"][g]["c"] == pytest.approx(c, abs=1e-5)
        assert [res["groups"][g]["t"][h] for h in ("x", "y")] == pytest.approx(list(t), abs=1e-5)
    p = np.linspace(0, 1, 100001)
    mean = np.mean([c + k * np.exp(np.outer(p, [1, 0]) @ t + np.outer(1 - p, [0, 1]) @ t)
                    for c, k, t in truth.values()], axis=0)
    assert res["optimal_mixture"]["x"] == pytest.approx(p[np.argmin(mean)], abs=1e-3)
    assert "NaN" not in out.read_text() and (tmp_path / "fit.png").stat().st_size > 1000
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "mixing_law_fitting.py"), "best", "--run_dir",
                          str(tmp_path / "missing")], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "missing" in bad.stderr


def test_fidelity_of_method_parameters(tmp_path):
    A_method = np.array([[0.2, 0.05, 0.0], [0.05, 0.3, 0.0], [0.0, 0.1, 0.1]])
    rng = np.random.default_rng(1)
    start = np.array([3.0, 3.2, 3.4])
    for seed in (0, 1):
        parent = write_run(tmp_path / "runs", f"aioli_break_s{seed}", G3, [1 / 3] * 3, method="aioli", seed=seed,
                           status="break", step=100, val_history=[(0, [9.0] * 3), (100, start)], val_loss=start,
                           artefacts={"aioli.json": {"groups": G3, "rounds": [
                               {"step": 50, "A": np.eye(3).tolist()}, {"step": 100, "A": A_method.tolist()}]}})
        # children follow A* = 0.5 A for seed 0 (sim 1), and a law that favours group c for seed 1
        A_star = 0.5 * A_method if seed == 0 else np.array([[0.1, 0, 0.3], [0, 0.1, 0.3], [0, 0, 0.4]])
        for c in range(4):
            p = rng.dirichlet(np.ones(3))
            write_run(tmp_path / "runs", f"child_s{seed}_{c}", G3, p, parent={"path": parent, "step": 100},
                      val_loss=start - A_star @ p)
    out = tmp_path / "fid.json"
    assert main(["fidelity", "--run_dir", str(tmp_path / "runs"), "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    sims = {v["seed"]: v for v in res["runs"].values()}
    assert sims[0]["sim"] == pytest.approx(1.0) and sims[0]["scale"] == pytest.approx(0.5)
    assert sims[1]["sim"] < 0.5
    assert res["methods"]["aioli"]["n"] == 2
    assert res["methods"]["aioli"]["mean_sim"] == pytest.approx((1.0 + sims[1]["sim"]) / 2)

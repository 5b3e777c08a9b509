"""Skill-it: the update rule by hand, graph files (JSON, .npy, orientation, reordering), the evaluation
schedule and resume, with a synthetic driver that imitates the loop (no neural network)."""
import json

import numpy as np
import pytest

from errors import UsageError
from methods.graphs import TRANSPOSED, graph_to_json, load_graph
from methods.skillit import SkillitMethod, preprocess_graph, skillit_weights
from trainer.args import build_parser

GROUPS = ["arxiv", "book", "stackexchange"]


def make(argv, groups=GROUPS, total=100):
    return SkillitMethod.from_args(list(groups), build_parser().parse_args(["--skillit", *argv]), total)


def drive(m, start, stop, L, traj):
    """Losses fall by 1% of the mixture weight per step: a simple, deterministic environment."""
    for s in range(start, stop):
        if m.wants_eval(s):
            m.observe_eval(s, L.copy())
        w = m.mixture(s).weights
        traj.append(w.tolist())
        L = L * (1 - 0.01 * w)
        m.after_step(s + 1, None)
    return L


def test_update_rule_by_hand():
    G = np.array([[0.8, 0.5], [0.2, 0.7]])
    S = np.array([3.0, 6.0])
    z = 0.2 * np.array([0.8 * 3 + 0.5 * 6, 0.2 * 3 + 0.7 * 6])
    np.testing.assert_allclose(skillit_weights(G, S, 0.2), np.exp(z) / np.exp(z).sum())
    assert np.all(np.isfinite(skillit_weights(G, S * 1e4, 10.0)))  # stable for large exponents
    np.testing.assert_array_equal(preprocess_graph([[1.0, 1.0], [0.3, 1.0]]), [[1.0, 0.5], [0.3, 1.0]])


def test_group_that_helps_others_is_upweighted(tmp_path):
    # training group 0 lowers every group's loss most: row 0 of G is large
    G = [[0.9, 0.6, 0.6], [0.1, 0.3, 0.1], [0.1, 0.1, 0.3]]
    path = tmp_path / "g.npy"
    np.save(path, np.array(G))
    m = make(["--update_steps", "20", "--eta", "0.2", "--graph_path", str(path)])
    traj = []
    drive(m, 0, 100, np.full(3, 4.0), traj)
    assert all(int(np.argmax(w)) == 0 for w in traj)
    ups = m.artifacts()["skillit.json"]["updates"]
    assert [u["step"] for u in ups] == [0, 20, 40, 60, 80]


def test_schedule_and_window():
    m = make(["--update_steps", "500", "--eta", "0.2", "--skillit_window", "3"], total=2000)
    asked = [s for s in range(2000) if m.wants_eval(s)]
    assert asked == [0, 250, 500, 750, 1000, 1250, 1500]  # the paper's window: u-500, u-250, u
    assert m.schedule.record_steps(1000) == [500, 750, 1000]
    L = np.array([3.0, 2.0, 1.0])
    for s in asked:
        m.observe_eval(s, L + s / 1000)
    rec = m.schedule.updates[2]
    assert rec["step"] == 1000
    np.testing.assert_allclose(rec["loss_sum"], 3 * L + 2.25)
    np.testing.assert_allclose(rec["weights"], skillit_weights(np.eye(3), 3 * L + 2.25, 0.2))
    m1 = make(["--update_steps", "7", "--eta", "0.2", "--skillit_window", "1"], total=30)
    assert [s for s in range(30) if m1.wants_eval(s)] == [7, 14, 21, 28]


def test_not_cumulative():
    m = make(["--update_steps", "10", "--eta", "0.5", "--skillit_window", "1"], total=30)
    L = np.array([1.0, 2.0, 3.0])
    m.observe_eval(10, L)
    m.observe_eval(20, L)
    np.testing.assert_allclose(m.weights, skillit_weights(np.eye(3), L, 0.5))


def test_json_npy_orientation_and_reordering(tmp_path):
    G = np.array([[0.8, 0.4, 0.5], [0.4, 0.6, 0.5], [0.7, 0.5, 0.7]])
    np.save(tmp_path / "g.npy", G)
    (tmp_path / "g.json").write_text(json.dumps(graph_to_json(G, GROUPS)))
    np.testing.assert_array_equal(load_graph(str(tmp_path / "g.npy"), GROUPS), G)
    np.testing.assert_array_equal(load_graph(str(tmp_path / "g.json"), GROUPS), G)
    (tmp_path / "t.json").write_text(json.dumps({"groups": GROUPS, "graph": G.T.tolist(), "orientation": TRANSPOSED}))
    np.testing.assert_array_equal(load_graph(str(tmp_path / "t.json"), GROUPS), G)
    # the same graph written in another group order is reordered by name
    perm = [2, 0, 1]
    other = {"groups": [GROUPS[i] for i in perm], "graph": G[np.ix_(perm, perm)].tolist()}
    (tmp_path / "p.json").write_text(json.dumps(other))
    np.testing.assert_array_equal(load_graph(str(tmp_path / "p.json"), GROUPS), G)
    a = make(["--update_steps", "10", "--eta", "0.2", "--graph_path", str(tmp_path / "p.json")])
    b = make(["--update_steps", "10", "--eta", "0.2", "--graph_path", str(tmp_path / "g.npy")])
    np.testing.assert_allclose(a.weights, skillit_weights(G, np.ones(3), 0.2))
    np.testing.assert_allclose(a.weights, b.weights)


@pytest.mark.parametrize("content,match", [
    ({"groups": ["arxiv", "book", "c4"], "graph": np.eye(3).tolist()}, "not the run's groups"),
    ({"groups": GROUPS, "graph": np.eye(2).tolist()}, "shape"),
    ({"groups": GROUPS, "graph": np.eye(3).tolist(), "orientation": "sideways"}, "orientation"),
    ({"groups": GROUPS}, "expected"),
])
def test_bad_graph_files(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(UsageError, match=match):
        load_graph(str(path), GROUPS)


def test_bad_inputs(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UsageError, match="pickle"):
        load_graph(str(tmp_path / "obj.npy"), GROUPS)
    with pytest.raises(UsageError, match="no such file"):
        load_graph(str(tmp_path / "missing.npy"), GROUPS)
    with pytest.raises(UsageError, match="--update_steps"):
        make(["--eta", "0.2"])
    with pytest.raises(UsageError, match="--eta"):
        make(["--update_steps", "10"])
    with pytest.raises(UsageError, match="--skillit_window"):
        make(["--update_steps", "10", "--eta", "0.2", "--skillit_window", "0"])


@pytest.mark.parametrize("cut", [0, 1, 10, 15, 19, 20, 21, 55, 99])
def test_state_round_trip_and_resume(tmp_path, cut):
    G = np.array([[0.8, 0.4, 0.5], [0.4, 0.6, 0.5], [0.7, 0.5, 0.7]])
    np.save(tmp_path / "g.npy", G)
    argv = ["--update_steps", "20", "--eta", "0.3", "--graph_path", str(tmp_path / "g.npy")]
    full, full_traj = make(argv), []
    drive(full, 0, 100, np.full(3, 4.0), full_traj)
    first, traj = make(argv), []
    L = drive(first, 0, cut, np.full(3, 4.0), traj)
    second = make(argv)
    second.load_state_dict(json.loads(json.dumps(first.state_dict(), allow_nan=False)))
    drive(second, cut, 100, L, traj)
    assert traj == full_traj
    assert json.dumps(second.artifacts()) == json.dumps(full.artifacts())

"""Aioli against a synthetic environment with a known linear dynamic law (no neural network).

The driver imitates trainer/loop.py exactly: at step s, evaluate if asked, take the mixture, "train"
(L <- L - A_true @ w, optionally plus a fixed per-step noise), then after_step(s + 1). Under this law
lp_steps steps on q_j lower the losses by lp_steps * A_true @ q_j, so LearnParams must recover
A_raw = lp_steps * A_true exactly.
"""
import json

import numpy as np
import pytest

from errors import UsageError
from methods.aioli import (AioliMethod, estimate_A, exp_update, fit_drops, noise_shrinkage, normalize_A, score_t,
                           objective_weights, probe_mixture, probe_order)
from trainer.args import build_parser
from batches import windows_and_groups

# The paper's update rule, for the tests of its mechanics: no warmup gate (the synthetic law has no
# learning rate), the sum of group losses, no noise gate, random orders, the prior as the base.
PAPER = ["--warmup_steps", "0", "--aioli_objective", "loss", "--aioli_noise_z", "0", "--aioli_probe_order", "random",
         "--aioli_trend", "0", "--aioli_base", "prior"]


def make(argv, k=3, total=400):
    args = build_parser().parse_args(["--aioli", *PAPER, *argv])
    return AioliMethod.from_args([f"g{i}" for i in range(k)], args, total)


def drive(m, A_true, L, start, stop, noise=None, traj=None):
    """Run steps [start, stop) like the loop; returns the losses after step stop - 1."""
    for s in range(start, stop):
        if m.wants_eval(s):
            m.observe_eval(s, L.copy())
        mix = m.mixture(s)
        if traj is not None:
            traj.append((s, mix.weights.tolist(), mix.exact))
        L = L - A_true @ mix.weights
        if noise is not None:
            L = L + noise[s]
        m.after_step(s + 1, None)
    return L


def law(k, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 0.01, (k, k)) + np.diag(rng.uniform(0.02, 0.05, k))


def run(argv, k=3, total=400, A_true=None, noise=None):
    m = make(argv, k, total)
    traj = []
    drive(m, law(k) if A_true is None else A_true, np.full(k, 5.0), 0, total, noise, traj)
    return m, traj


@pytest.mark.parametrize("k,ohf", [(2, 0.625), (2, 0.75), (3, 0.625), (3, 0.5), (3, 0.75), (7, 0.625),
                                   (7, 0.5), (7, 0.75), (3, 1.0)])
def test_recovers_A_exactly(k, ohf):
    lp_steps = 4
    m, _ = run(["--eta", "0.5", "--update_steps", "80", "--lp_rounds", "2", "--lp_steps", str(lp_steps),
                "--one_hot_factor", str(ohf)], k=k, total=240)
    assert len(m.rounds) == 3
    target = lp_steps * law(k)
    for rec in m.rounds:
        err = np.abs(np.array(rec["A_raw"]) - target).max() / np.abs(target).max()
        assert err < 1e-6
        assert sorted(rec["probe_order"]) == sorted(list(range(k)) * 2)
        # every probe's drops are recorded in probe order; under the law each is lp_steps * A_true @ q_j
        drops, W = np.array(rec["probe_drops"]), np.array(rec["W"])
        np.testing.assert_allclose(drops, W[rec["probe_order"]] @ target.T, atol=1e-9)


def test_recovers_A_with_noise():
    k, total = 3, 300
    noise = np.random.default_rng(1).normal(0, 1e-4, (total, k))
    m, _ = run(["--eta", "0.5", "--update_steps", "100", "--lp_rounds", "4", "--lp_steps", "4",
                "--one_hot_factor", "0.625"], k=k, total=total, noise=noise)
    target = 4 * law(k)
    for rec in m.rounds:
        assert np.abs(np.array(rec["A_raw"]) - target).max() < 0.05 * np.abs(target).max()


@pytest.mark.parametrize("extra", [[], ["--aioli_normalize_A"], ["--aioli_normalize_A", "--ema", "0.1"]])
def test_moves_toward_largest_column_sum(extra):
    k = 3
    A_true = np.array([[0.02, 0.0, 0.01], [0.0, 0.03, 0.02], [0.01, 0.0, 0.04]])  # colsums .03 .03 .07
    m, _ = run(["--eta", "5", "--update_steps", "50", "--lp_rounds", "1", "--lp_steps", "4",
                "--one_hot_factor", "0.75", *extra], k=k, total=400, A_true=A_true)
    p2 = [r["weights"][2] for r in m.rounds]
    assert p2[0] > 1 / 3
    if "--ema" in extra:  # non-cumulative: a constant law gives a constant p after the first round
        assert np.allclose(p2, p2[0])
    else:  # cumulative: every round multiplies the same factor in again
        assert all(b > a for a, b in zip(p2, p2[1:]))
    assert int(np.argmax(m.weights)) == 2


def test_normalize_and_exp_update_by_hand():
    A = np.array([[1.0, -1.0], [2.0, 0.0]])
    np.testing.assert_allclose(normalize_A(A), np.array([[2.0, 0.0], [3.0, 1.0]]) / 6.0)
    np.testing.assert_allclose(normalize_A(np.array([[1.0, 3.0], [0.0, 0.0]])), [[0.25, 0.75], [0, 0]])
    assert np.all(normalize_A(np.full((2, 2), -2.0)) == 0)  # constant matrix: zero sum is guarded
    w = exp_update(np.array([0.2, 0.8]), np.array([1.0, 0.0]), 2.0)
    np.testing.assert_allclose(w, np.array([0.2 * np.e**2, 0.8]) / (0.2 * np.e**2 + 0.8))
    np.testing.assert_allclose(exp_update(np.array([0.0, 1.0]), np.array([9.0, 0.0]), 1.0), [0.0, 1.0])
    W = np.array([[0.75, 0.25], [0.25, 0.75]])
    A_true = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(estimate_A(A_true @ W.T, W), A_true)
    np.testing.assert_allclose(estimate_A(A_true @ W.T, W, diagonal=True), np.diag(np.diag(A_true @ W) / 0.75))
    W = np.array([[0.7, 0.3], [0.2, 0.8]])  # realised probe mixtures need not be symmetric
    np.testing.assert_allclose(estimate_A(A_true @ W.T, W), A_true)


@pytest.mark.parametrize("ema", [None, "0.3"])
def test_round_updates_by_hand(ema):
    k, total, eta = 3, 400, 0.7
    noise = np.random.default_rng(2).normal(0, 2e-3, (total, k))  # makes every round's A different
    argv = ["--eta", str(eta), "--update_steps", "100", "--lp_rounds", "2", "--lp_steps", "3",
            "--one_hot_factor", "0.6", "--aioli_normalize_A"] + ([] if ema is None else ["--ema", ema])
    m, _ = run(argv, k=k, total=total, noise=noise)
    p, abar = np.full(k, 1 / k), None
    for rec in m.rounds:
        A = normalize_A(np.array(rec["A_raw"]))
        if ema is None:
            p = p * np.exp(eta * A.sum(0))
            used = A
        else:
            used = A if abar is None else (1 - float(ema)) * A + float(ema) * abar
            abar = used
            p = np.exp(eta * used.sum(0))  # non-cumulative: from the uniform base every round
        p = p / p.sum()
        np.testing.assert_allclose(rec["A"], used, rtol=1e-12)
        np.testing.assert_allclose(rec["weights"], p, rtol=1e-12)
    assert len({tuple(np.round(r["A_raw"][0], 9)) for r in m.rounds}) == len(m.rounds)


@pytest.mark.parametrize("k,ohf", [(2, 0.625), (3, 0.5), (7, 0.75)])
def test_probe_mixtures_exact(k, ohf):
    lp_steps, lp_rounds = 2, 2
    m, traj = run(["--eta", "1", "--update_steps", "60", "--lp_rounds", str(lp_rounds), "--lp_steps", str(lp_steps),
                   "--one_hot_factor", str(ohf)], k=k, total=120)
    delta = lp_rounds * lp_steps * k
    for r0, r in ((0, 0), (60, 1)):
        order = probe_order(0, r, k, lp_rounds)
        assert order == m.rounds[r]["probe_order"]
        for off in range(60):
            s, w, exact = traj[r0 + off]
            if off < delta:
                q = probe_mixture(k, order[off // lp_steps], ohf)
                assert exact and np.allclose(w, q) and abs(sum(w) - 1) < 1e-12
                assert w[order[off // lp_steps]] == ohf
            else:
                assert not exact and np.allclose(w, m.rounds[r]["weights"])
    assert probe_order(1, 0, k, lp_rounds) != probe_order(0, 0, k, lp_rounds) or k == 2


def test_probe_batches_with_sampler():
    """The realised probe batches for k=7, ohf 0.75, B=8: lp_steps full batches, every group within one
    window of q*B (the paper's block rule gave the wrong focal share and fewer batches)."""
    sampler = pytest.importorskip("data.sampler")
    k, ohf, B, lp_steps, L = 7, 0.75, 8, 10, 16
    sources = {f"g{g}": np.full(400 * L, g, dtype=np.uint16) for g in range(k)}  # token id = group
    s = sampler.MixtureSampler(sources, L, B, 0, sampling="multinomial")  # exact=True must still hold
    for j in probe_order(0, 0, k, 2):
        q = probe_mixture(k, j, ohf)
        s.set_weights(q)
        for _ in range(lp_steps):
            windows, gids = windows_and_groups(s.next_batch(exact=True))
            counts = np.bincount(gids, minlength=k)
            assert windows.shape == (B, L) and len(gids) == B
            assert np.all(np.abs(counts - q * B) < 1.0) and counts[j] == 6
            assert np.all(windows[:, 0] == gids)


def _resume_case(argv, k, total, cut, noise):
    A_true = law(k)
    full = make(argv, k, total)
    full_traj = []
    drive(full, A_true, np.full(k, 5.0), 0, total, noise, full_traj)
    first = make(argv, k, total)
    traj = []
    L = drive(first, A_true, np.full(k, 5.0), 0, cut, noise, traj)
    state = json.loads(json.dumps(first.state_dict(), allow_nan=False))
    second = make(argv, k, total)
    second.load_state_dict(state)
    drive(second, A_true, L, cut, total, noise, traj)
    assert traj == full_traj
    assert json.dumps(second.artifacts()) == json.dumps(full.artifacts())


@pytest.mark.parametrize("cut", [0, 1, 29, 30, 31, 35, 53, 54, 55, 90, 97, 101, 113, 114, 115, 150, 163, 270, 294, 299])
def test_resume_anywhere(cut):
    # prior [0, 30); rounds start at 30, 90, 150, 210, 270 (the last is 30 steps: still > delta = 24);
    # probes fill [r0, r0 + 24) and p is updated at r0 + 24. 35, 97, 101 are inside probes.
    total = 300
    noise = np.random.default_rng(3).normal(0, 1e-3, (total, 3))
    argv = ["--eta", "0.5", "--update_steps", "60", "--lp_rounds", "2", "--lp_steps", "4", "--one_hot_factor", "0.6",
            "--aioli_normalize_A", "--ema", "0.2", "--aioli_prior", "1", "2", "3", "--prior_steps", "30"]
    _resume_case(argv, 3, total, cut, noise)


def test_prior_steps_zero_equals_no_prior():
    argv = ["--eta", "0.5", "--update_steps", "60", "--lp_steps", "4", "--one_hot_factor", "0.6"]
    a, ta = run(argv, total=240)
    b, tb = run(argv + ["--aioli_prior", "1", "1", "1", "--prior_steps", "0"], total=240)
    assert ta == tb and len(a.rounds) == len(b.rounds) == 4
    assert a.rounds == b.rounds


def test_prior_is_carried():
    eta = 0.5
    m, traj = run(["--eta", str(eta), "--update_steps", "60", "--lp_steps", "4", "--one_hot_factor", "0.6",
                   "--aioli_prior", "1", "2", "7", "--prior_steps", "50"], total=230)
    prior = np.array([0.1, 0.2, 0.7])
    assert all(np.allclose(w, prior) and not exact for s, w, exact in traj[:50])
    assert not any(m.wants_eval(s) for s in range(50)) and m.wants_eval(50)
    first = m.rounds[0]
    assert first["step"] == 50 + 12
    expected = prior * np.exp(eta * np.array(first["A"]).sum(0))
    np.testing.assert_allclose(first["weights"], expected / expected.sum(), rtol=1e-12)
    assert m.artifacts()["aioli.json"]["initial_weights"] == pytest.approx(prior.tolist())


@pytest.mark.parametrize("lp_steps,rounds_done", [(8, 3), (20, 2)])
def test_short_last_round(lp_steps, rounds_done):
    # rest of the run = 250 steps: rounds at 0, 100, 200; the last has 50 steps
    m, traj = run(["--eta", "0.5", "--update_steps", "100", "--lp_steps", str(lp_steps), "--one_hot_factor", "0.6"],
                  total=250)
    assert [r["step"] for r in m.rounds] == [100 * r + 3 * lp_steps for r in range(rounds_done)]
    if rounds_done == 2:  # delta = 60 >= 50: the last round only trains on p
        assert not m.wants_eval(200)
        assert all(not exact and np.allclose(w, m.rounds[1]["weights"]) for s, w, exact in traj[200:])
    assert len(traj) == 250


def test_static_keeps_p_fixed():
    m, traj = run(["--eta", "1", "--aioli_static", "--lp_rounds", "2", "--lp_steps", "3", "--one_hot_factor", "0.6"],
                  total=200)
    assert len(m.rounds) == 1 and m.rounds[0]["step"] == 18
    assert not any(m.wants_eval(s) for s in range(19, 200))
    assert all(w == m.rounds[0]["weights"] and not exact for s, w, exact in traj[18:])
    assert not np.allclose(m.weights, 1 / 3)


def test_diagonal_variant():
    k, lp = 3, 4
    A_diag = np.diag([0.02, 0.05, 0.03])
    m, _ = run(["--eta", "1", "--update_steps", "60", "--lp_steps", str(lp), "--one_hot_factor", "0.6",
                "--aioli_diagonal"], k=k, total=120, A_true=A_diag)
    np.testing.assert_allclose(m.rounds[0]["A_raw"], lp * A_diag, rtol=1e-9)
    m, _ = run(["--eta", "1", "--update_steps", "60", "--lp_steps", str(lp), "--one_hot_factor", "0.6",
                "--aioli_diagonal"], k=k, total=120)
    D = np.array(m.rounds[0]["D"])
    np.testing.assert_allclose(m.rounds[0]["A_raw"], np.diag(np.diag(D) / 0.6), rtol=1e-12)
    m, _ = run(["--eta", "1", "--update_steps", "60", "--lp_steps", str(lp), "--one_hot_factor", "1",
                "--aioli_diagonal"], k=k, total=120)  # ohf 1 is accepted: D_ii is the self-effect
    np.testing.assert_allclose(m.rounds[0]["A_raw"], lp * np.diag(np.diag(law(k))), rtol=1e-9)


def test_skillit_initialisation(tmp_path):
    from methods.skillit import skillit_weights

    G = [[0.5, 0.1, 0.1], [0.1, 0.2, 0.1], [0.1, 0.1, 0.3]]
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"groups": ["g0", "g1", "g2"], "graph": G,
                                "orientation": "rows = trained group, columns = evaluated group"}))
    m, traj = run(["--eta", "0.5", "--update_steps", "60", "--lp_steps", "4", "--one_hot_factor", "0.6",
                   "--graph_path", str(path), "--prior_steps", "60", "--skillit_eta", "0.2",
                   "--skillit_update_steps", "20"], total=240)
    np.testing.assert_allclose(traj[0][1], skillit_weights(np.array(G), np.ones(3), 0.2))
    ups = m.artifacts()["aioli.json"]["skillit_init"]["updates"]
    assert [u["step"] for u in ups] == [0, 20, 40]
    assert np.allclose(traj[59][1], ups[-1]["weights"])
    first = m.rounds[0]
    expected = np.array(ups[-1]["weights"]) * np.exp(0.5 * np.array(first["A"]).sum(0))
    np.testing.assert_allclose(first["weights"], expected / expected.sum(), rtol=1e-12)
    _resume_case(["--eta", "0.5", "--update_steps", "60", "--lp_steps", "4", "--one_hot_factor", "0.6",
                  "--graph_path", str(path), "--prior_steps", "60", "--skillit_eta", "0.2",
                  "--skillit_update_steps", "20"], 3, 240, 35, None)


BASE = ["--eta", "1", "--update_steps", "100", "--lp_steps", "4", "--one_hot_factor", "0.6"]


@pytest.mark.parametrize("argv,k,total,flag", [
    (["--update_steps", "100"], 3, 400, "--eta"),
    (["--eta", "1"], 3, 400, "--update_steps"),
    (BASE[:-1] + ["0.3"], 3, 400, "--one_hot_factor"),
    (BASE[:-1] + ["1.2"], 3, 400, "--one_hot_factor"),
    (BASE[:-1] + ["0.5"], 2, 400, "--one_hot_factor"),
    (BASE + ["--aioli_prior", "1", "2", "--prior_steps", "10"], 3, 400, "--aioli_prior"),
    (BASE + ["--aioli_prior", "1", "2", "3"], 3, 400, "--prior_steps"),
    (BASE + ["--prior_steps", "400"], 3, 400, "--prior_steps"),
    (BASE + ["--prior_steps", "-1"], 3, 400, "--prior_steps"),
    (BASE + ["--ema", "1"], 3, 400, "--ema"),
    (BASE + ["--ema", "-0.1"], 3, 400, "--ema"),
    (BASE + ["--lp_rounds", "9"], 3, 400, "--update_steps"),  # 9 * 4 * 3 = 108 >= 100
    (BASE + ["--lp_rounds", "8"], 3, 90, "--max_steps"),  # 96 < 100, but the run has 90 steps
    (BASE, 1, 400, "--slice_list"),
    (BASE + ["--graph_path", "x.json"], 3, 400, "--prior_steps"),
    (BASE + ["--aioli_static", "--lp_rounds", "20"], 3, 200, "--max_steps"),
    (BASE + ["--warmup_steps", "390"], 3, 400, "--warmup_steps 390"),  # no room for a round after the warmup
    (BASE + ["--batch_size", "2", "--lp_steps", "1", "--one_hot_factor", "0.4"], 3, 400, "--one_hot_factor"),
    (BASE + ["--aioli_noise_z", "-1"], 3, 400, "--aioli_noise_z"),
])
def test_refusals(argv, k, total, flag):
    with pytest.raises(UsageError, match=flag):
        make(argv, k, total)


def test_probes_longer_than_round_message_has_numbers():
    with pytest.raises(UsageError) as err:
        make(BASE + ["--lp_rounds", "9"], 3, 400)
    msg = str(err.value)
    assert "--lp_rounds 9" in msg and "--lp_steps 4" in msg and "108" in msg and "--update_steps 100" in msg


# -- the estimator's robustness (probe composition, warmup, noise, objective, restricted base) -------
@pytest.mark.parametrize("B", [8, 16])
@pytest.mark.parametrize("k", [2, 3, 5, 7])
def test_probe_batches_realise_W_exactly(k, B):
    """Every probe's lp_steps batches hold exactly W[focal] x rows rows per group (W: what A is
    un-mixed with), through the real sampler, for the paper's and the demo's probe shares."""
    sampler = pytest.importorskip("data.sampler")
    L, lp_steps, lp_rounds = 8, 2, 2
    for ohf in sorted({0.625, 0.75, min(2.0 / k, 0.75)}):
        m = make(["--eta", "1", "--update_steps", "200", "--lp_rounds", str(lp_rounds), "--lp_steps", str(lp_steps),
                  "--one_hot_factor", str(ohf), "--batch_size", str(B)], k=k, total=400)
        sources = {f"g{g}": np.full(400 * L, g, dtype=np.uint16) for g in range(k)}  # token id = group
        s = sampler.MixtureSampler(sources, L, B, 0, sampling="multinomial")  # exact=True must still hold
        W, order = m.probe_mixtures(0), m._order(0)
        rows = lp_steps * B
        assert np.allclose(W.sum(axis=1), 1.0) and np.all(np.diag(W) > W.max(axis=1, initial=0) - 1e-12)
        for i, focal in enumerate(order):
            counts = np.zeros(k, dtype=np.int64)
            for step in range(i * lp_steps, (i + 1) * lp_steps):
                mix = m.mixture(step)
                assert mix.exact and np.array_equal(mix.weights, W[focal])
                s.set_weights(mix.weights)
                windows, gids = windows_and_groups(s.next_batch(exact=True))
                assert np.all(windows[:, 0] == gids)
                counts += np.bincount(gids, minlength=k)
            np.testing.assert_array_equal(counts, np.rint(W[focal] * rows).astype(np.int64))
            assert abs(counts[focal] / rows - ohf) <= 0.5 / rows + 1e-12  # the focal share is ohf, rounded


def test_probe_extras_are_not_biased_to_low_indices():
    # k=5, B=8, lp_steps 2, ohf 0.4: 6 focal rows, 10 rows over 4 others -> two of them get 3
    m = make(["--eta", "1", "--update_steps", "100", "--lp_steps", "2", "--one_hot_factor", "0.4",
              "--batch_size", "8"], k=5, total=4000)
    extra = np.zeros(5)
    for r in range(30):
        W = m.probe_mixtures(r) * 16
        for j in range(5):
            extra += (W[j] == 3)
    assert extra.min() > 0.5 * extra.max()  # each group gets the extra rows about equally often


def test_no_probes_inside_the_warmup_by_default():
    args = ["--eta", "1", "--update_steps", "50", "--lp_steps", "2", "--one_hot_factor", "0.6"]
    m = AioliMethod.from_args(["a", "b", "c"], build_parser().parse_args(["--aioli", *args, "--warmup_steps", "30"]), 200)
    # the warmup's 30 steps, then ceil(30 / 8) = 4 settling steps on the current mixture
    assert not any(m.wants_eval(s) for s in range(34)) and m.wants_eval(34)
    assert all(not m.mixture(s).exact and np.allclose(m.mixture(s).weights, 1 / 3) for s in range(34))
    settings = m.artifacts()["aioli.json"]["settings"]
    assert m.mixture(34).exact and settings["first_round_step"] == 34 and settings["settle_steps"] == 4
    at_end = AioliMethod.from_args(["a", "b", "c"], build_parser().parse_args(
        ["--aioli", *args, "--warmup_steps", "30", "--aioli_settle_steps", "0"]), 200)
    assert at_end.wants_eval(30) and not at_end.wants_eval(29)
    with pytest.raises(UsageError, match="--aioli_settle_steps"):
        AioliMethod.from_args(["a", "b"], build_parser().parse_args(
            ["--aioli", *args, "--warmup_steps", "30", "--aioli_settle_steps", "-1"]), 200)
    paper = AioliMethod.from_args(["a", "b", "c"], build_parser().parse_args(
        ["--aioli", *args, "--warmup_steps", "30", "--aioli_probe_warmup"]), 200)
    assert paper.wants_eval(0) and paper.mixture(0).exact
    no_warmup = AioliMethod.from_args(["a", "b", "c"], build_parser().parse_args(
        ["--aioli", *args, "--warmup_steps", "30", "--lr_scheduler", "cosine"]), 200)  # cosine: no warmup
    assert no_warmup.wants_eval(0)


def test_fit_drops_and_noise_shrinkage_by_hand():
    W = np.array([[0.75, 0.25], [0.25, 0.75]])
    A_true = np.array([[0.04, 0.01], [0.0, 0.02]])
    order = [0, 1, 1, 0, 1, 0, 0, 1]
    u = np.linspace(-1, 1, 8)
    drops = W[order] @ A_true.T + np.outer(0.01 - 0.02 * u, [1.0, 0.5])  # a linear drift on top
    A, M, sigma2 = fit_drops(drops, W[order], trend=1)
    # the drift is credited to no group: only its constant part remains, alike in every column of a row
    # (a constant per row moves every score alike, so p does not see it)
    np.testing.assert_allclose(A - A_true, [[0.01, 0.01], [0.005, 0.005]], atol=1e-12)
    np.testing.assert_allclose(sigma2, 0.0, atol=1e-20)  # the model is exact
    A0, _, _ = fit_drops(drops, W[order], trend=0)
    D = np.stack([drops[[m for m, j in enumerate(order) if j == c]].mean(0) for c in range(2)], axis=1)
    np.testing.assert_allclose(A0, estimate_A(D, W))  # trend 0 = the paper's un-mixing of mean drops
    assert fit_drops(drops[:3], W[order[:3]], trend=1)[2] is None  # 3 probes, 3 unknowns: no noise estimate
    # the gate: var of the centred score = sum(obj^2 sigma2) (C M C)_ll
    M = np.eye(2)  # (C M C)_ll = 1/2
    score = np.array([0.3, 0.1])  # centred +-0.1; var = 0.01 * 1/2, so t^2 = 2
    t = score_t(score, np.ones(2), M, np.array([0.005, 0.005]))
    np.testing.assert_allclose(t, [np.sqrt(2), -np.sqrt(2)])
    np.testing.assert_allclose(score_t(score, np.array([0.5, 1.5]), M, np.array([0.005, 0.005])), t / np.sqrt(1.25))
    np.testing.assert_allclose(noise_shrinkage(t, 1.0), [0.5, 0.5])
    np.testing.assert_allclose(noise_shrinkage(t, 1.5), [0.0, 0.0])
    np.testing.assert_allclose(noise_shrinkage(t, 0.0), [1.0, 1.0])
    assert np.isnan(score_t(score, np.ones(2), M, None)).all()
    np.testing.assert_allclose(noise_shrinkage(score_t(score, np.ones(2), M, None), 1.0), [1.0, 1.0])
    np.testing.assert_allclose(objective_weights(np.array([1.0, 1.0 + np.log(3.0)]), "perplexity"), [0.5, 1.5])
    np.testing.assert_allclose(objective_weights(np.array([1.0, 9.0]), "loss"), [1.0, 1.0])


NOISY = ["--eta", "2", "--update_steps", "60", "--lp_rounds", "4", "--lp_steps", "2", "--one_hot_factor", "0.6",
         "--aioli_normalize_A", "--batch_size", "8"]


def test_noise_gate_keeps_p_on_pure_noise():
    """Every mixture lowers every loss alike (no signal) plus step noise: ungated, p random-walks;
    gated, most rounds leave p exactly where it is and the path p travels is a small fraction."""
    k, total = 3, 1800
    A_flat = np.full((k, k), 0.01)
    noise = np.random.default_rng(5).normal(0, 2e-3, (total, k))
    path, moved = {}, {}
    for z in ("0", "2"):
        m, _ = run(NOISY + ["--aioli_noise_z", z], k=k, total=total, A_true=A_flat, noise=noise)
        steps = [np.abs(np.subtract(a["weights"], b["weights"])).sum() for a, b in zip(m.rounds, m.rounds[1:])]
        path[z], moved[z] = sum(steps), np.mean([x > 1e-12 for x in steps])
    assert moved["0"] == 1.0 and path["0"] > 0.5  # the paper's update: a random walk, 29 steps
    assert moved["2"] < 0.25 and path["2"] < 0.1 * path["0"]


def test_noise_gate_still_follows_a_real_signal():
    k, total = 3, 600
    A_true = np.array([[0.02, 0.0, 0.01], [0.0, 0.03, 0.02], [0.01, 0.0, 0.04]])  # colsums .03 .03 .07
    noise = np.random.default_rng(6).normal(0, 2e-3, (total, k))
    m, _ = run(NOISY + ["--aioli_noise_z", "2"], k=k, total=total, A_true=A_true, noise=noise)
    for rec in m.rounds:  # A is recovered through the noise
        assert np.abs(np.array(rec["A_raw"]) - 2 * A_true).max() < 0.35 * np.abs(2 * A_true).max()
    assert all(np.mean(r["shrinkage"]) > 0.5 for r in m.rounds)
    for r in m.rounds:  # the recorded t is what the gate read: shrinkage = max(0, 1 - (z / t)^2)
        np.testing.assert_allclose(r["shrinkage"], np.clip(1 - 4 / np.square(r["score_t"]), 0, 1))
    assert all(r["score_t"][2] > 2 for r in m.rounds)  # the best group's centred score clears the gate
    p2 = [r["weights"][2] for r in m.rounds]
    assert all(b > a for a, b in zip(p2, p2[1:])) and p2[-1] > 0.6  # toward the best vertex


def test_antithetic_order_cancels_a_linear_trend():
    """Drops that shrink linearly over the LearnParams (the loss curve flattening) and no mixture
    effect: antithetic pairs see every group at mirrored positions, so the scores are equal."""
    k, lp_steps = 3, 2

    def scores(order_flag):
        m = make(["--eta", "1", "--update_steps", "100", "--lp_rounds", "2", "--lp_steps", str(lp_steps),
                  "--one_hot_factor", "0.6", "--aioli_probe_order", order_flag, "--selection_seed", "2"], k=k, total=100)
        L = np.full(k, 5.0)
        for s in range(2 * k * lp_steps + 1):
            if m.wants_eval(s):
                m.observe_eval(s, L.copy())
            m.mixture(s)
            L = L - 0.01 * (1.0 - s / 20.0)  # every group alike, less each step
        return np.array(m.rounds[0]["score"])

    assert probe_order(2, 0, k, 2) == [2, 1, 0, 1, 2, 0]  # random: the second repeat is not the mirror
    anti, rand = scores("antithetic"), scores("random")
    assert np.ptp(anti) < 1e-9 < np.ptp(rand)


def test_perplexity_objective_weights_rows_by_perplexity():
    k = 2
    A_true = np.array([[0.03, 0.0], [0.0, 0.02]])  # group 0 learns faster from its own data
    for objective, favoured in (("loss", 0), ("perplexity", 1)):
        m = make(["--eta", "1", "--update_steps", "50", "--lp_steps", "2", "--one_hot_factor", "0.75",
                  "--aioli_objective", objective], k=k, total=100)
        drive(m, A_true, np.array([3.0, 4.0]), 0, 100)  # group 1: e^1 = 2.7x the perplexity
        assert int(np.argmax(m.weights)) == favoured


def test_restricted_setting_leaves_a_bad_prior():
    """Prior 0.9/0.1 for 100 steps while group 1's data helps most; with either base Aioli moves
    toward group 1 (with the uniform base at once, with the prior base round by round)."""
    k, total = 2, 700
    A_true = np.array([[0.01, 0.0], [0.005, 0.04]])  # colsums .015 .04: the optimum is all group 1
    noise = np.random.default_rng(7).normal(0, 5e-4, (total, k))
    for base in ("uniform", "prior"):
        m, traj = run(["--eta", "2", "--update_steps", "60", "--lp_rounds", "4", "--lp_steps", "2",
                       "--aioli_normalize_A", "--aioli_noise_z", "2", "--aioli_prior", "0.9", "0.1", "--prior_steps", "100",
                                    "--aioli_base", base, "--batch_size", "8", "--one_hot_factor", "0.625"],
                      k=k, total=total, A_true=A_true, noise=noise)
        assert np.allclose(traj[99][1], [0.9, 0.1])
        p1 = [r["weights"][1] for r in m.rounds]
        assert p1[-1] > 0.5 and p1[-1] > p1[0] >= 0.1
        if base == "uniform":
            assert p1[0] > 0.5


def test_thue_morse_order_cancels_a_quadratic_drift_for_two_groups():
    order = probe_order(0, 0, 2, 4, antithetic=True)
    assert order in ([0, 1, 1, 0, 1, 0, 0, 1], [1, 0, 0, 1, 0, 1, 1, 0])
    pos = np.arange(1, 9)
    for power in (1, 2):  # sums of positions and of squared positions are equal for both groups
        assert sum(pos[np.array(order) == 0] ** power) == sum(pos[np.array(order) == 1] ** power)
    k3 = probe_order(5, 1, 3, 4, antithetic=True)
    assert k3[3:6] == k3[:3][::-1] and k3[6:9] == k3[3:6] and k3[9:] == k3[:3]  # + - - +


def test_antithetic_order_lets_every_group_lead_equally_often():
    # the first probe of a LearnParams is the one most exposed to what the trend misses: the group that
    # leads it cycles with the seed and the round instead of following one random draw per seed
    for k in (2, 3, 5):
        for r in range(3):
            leads = [probe_order(seed, r, k, 4, antithetic=True)[0] for seed in range(2 * k)]
            assert leads == [(seed + r) % k for seed in range(2 * k)]
    orders = {tuple(probe_order(seed, 0, 5, 1, antithetic=True)) for seed in range(0, 50, 5)}  # same lead, 0
    assert len(orders) > 1  # the rest of the permutation is still drawn

"""ADO: the scaling-law fit recovers known parameters, the method's online fits on a synthetic environment with
known per-group power laws recover them and its mixture follows the laws' slopes, the policy's pieces by hand,
gradient accumulation and ranks, determinism, resume through JSON, refusals, and one end-to-end run whose
average weights feed a static run."""
import json
import math
import os

import numpy as np
import pytest

from methods.ado import AdoMethod, AdoOptions, floor_probabilities, smooth
from methods.base import RunFacts
from methods.scaling_fit import fit_power_law, law_value
from online_env import context, drive, fake_batch, json_round_trip, two_ranks_equal_one
from test_main_e2e import _main_in_process, only_run_dir, paper_flags

GROUPS = ["arxiv", "book", "stackexchange"]
# (a, e, alpha) per group: L = e^e + e^a n^-alpha
TRUE = np.array([[math.log(8.0), math.log(2.5), 0.5], [math.log(4.0), math.log(3.0), 0.3],
                 [math.log(6.0), math.log(2.0), 0.15]])
ROWS = 8


def law(g, s):
    """Every group's loss after step s follows its law in n = all rows trained so far (ADO's default count)."""
    return float(law_value(TRUE[g:g + 1], (s + 1) * ROWS)[0])


def make(total=900, **options):
    options = {"ado_update_steps": 300, "ado_start_step": 300, "ado_ignore_steps": 100, **options}
    return AdoMethod(GROUPS, AdoOptions(**options), total, RunFacts(log_every=10))


def true_rho(method, n):
    slope = np.maximum(TRUE[:, 2], 0.05) * (law_value(TRUE, n) - np.exp(TRUE[:, 1])) / n
    raw = method.mu * method.credit ** method.s * slope
    return raw / raw.sum()


def test_fit_recovers_a_known_power_law():
    rng = np.random.default_rng(0)
    n = np.arange(1, 101) * 80.0
    for a, e, alpha in TRUE:
        loss = (math.exp(e) + math.exp(a) * n ** -alpha) * np.exp(rng.normal(0, 0.002, n.size))
        fa, fe, falpha = fit_power_law(n, loss)
        assert falpha == pytest.approx(alpha, abs=0.03)
        assert math.exp(fe) == pytest.approx(math.exp(e), rel=0.05)
        assert math.exp(fa) == pytest.approx(math.exp(a), rel=0.2)
    assert fit_power_law(n, np.full(n.size, np.nan)) is None
    assert fit_power_law(np.array([]), np.array([])) is None


def test_online_fits_recover_the_laws_and_the_mixture_follows_their_slopes():
    seen = []
    method = drive(make(), 0, 900, law, np.random.default_rng(1), batch_rows=ROWS, noise=0.02, seen=seen)
    assert [f["step"] for f in method.fits] == [300, 600, 900] and all(f["accepted"] for f in method.fits)
    assert method.fits[-1]["points"] == len(range(100, 900, 10))
    for w in seen[:300]:  # before the first fit (after step 300): the initial weights
        assert w == pytest.approx([1 / 3] * 3, abs=1e-15)
    got = method.params
    # the smoothed steep start biases beta most; the slope at the current n, which the policy uses, is tight
    assert got[:, 2] == pytest.approx(TRUE[:, 2], abs=0.04)
    assert np.exp(got[:, 1]) == pytest.approx(np.exp(TRUE[:, 1]), rel=0.05)
    assert np.exp(got[:, 0]) == pytest.approx(np.exp(TRUE[:, 0]), rel=0.2)
    # the flattest law still has the most reducible loss per row at this n: it gets the most weight
    expected = true_rho(method, 900 * ROWS)
    assert method.rho == pytest.approx(expected, abs=0.01)
    assert np.argsort(method.policy).tolist() == np.argsort(expected).tolist() == [0, 1, 2]
    for w in seen[300:]:
        assert w[2] > w[1] > w[0]
    assert method.trajectory[-1]["weights"] == method.policy.tolist()
    assert np.asarray(method.rows).sum(1).tolist() == [ROWS] * 900
    assert method.current_count().tolist() == method.counts()[-1].tolist() == [900.0 * ROWS] * 3


def test_policy_pieces_by_hand():
    assert floor_probabilities(np.array([0.98, 0.015, 0.005]), 0.01) == pytest.approx(
        np.array([0.98, 0.015, 0.01]) / 1.005)
    assert floor_probabilities(np.array([0.5, 0.5]), 0.0).tolist() == [0.5, 0.5]
    history = np.outer(np.arange(30.0) ** 2, [1.0, 2.0])  # a cubic filter keeps a parabola exactly
    assert smooth(history) == pytest.approx(history)
    assert smooth(history[:4]) is None  # window 3 <= order 3: too short to smooth
    method = make(ado_gamma1=0.5, ado_gamma2=0.25, ado_start_step=0, ado_update_steps=1, ado_ignore_steps=0)
    method.params = TRUE.copy()
    method.rows, method.seen = [[4.0, 2.0, 2.0]], np.array([4.0, 2.0, 2.0])
    method.credit = np.array([0.5, 0.25, 0.25])
    method.update_policy(3)
    raw = method.mu * method.credit ** 0.5 * np.maximum(TRUE[:, 2], 0.05) * np.exp(TRUE[:, 0]) * 8.0 ** -TRUE[:, 2] / 8
    rho = floor_probabilities(raw / raw.sum(), 0.01)
    assert method.rho == pytest.approx(rho)
    assert method.policy == pytest.approx(0.75 * np.full(3, 1 / 3) + 0.25 * rho)
    assert method.pibar == pytest.approx(0.75 * np.full(3, 1 / 3) + 0.25 * rho)  # 1 - 1/(t+1) = 3/4 at t = 3


def test_credit_and_carried_losses():
    method = make(ado_gamma1=0.5)
    rng = np.random.default_rng(2)
    for step, gids in enumerate(([0, 0, 1, 1], [0, 0, 0, 0])):
        batch = fake_batch(gids, [2.0 + g for g in gids], rng)
        method.training_loss(None, batch, context(step, GROUPS))
        method.after_step(step + 1, context(step, GROUPS))
    # step 1: group 2 absent -> the batch mean (2.5); step 2: groups 1 and 2 carry their last value
    assert method.losses == [pytest.approx([2.0, 3.0, 2.5]), pytest.approx([2.0, 3.0, 2.5])]
    assert method.credit == pytest.approx(0.5 * (0.5 * np.full(3, 1 / 3) + 0.5 * np.array([0.5, 0.5, 0])) +
                                          0.5 * np.array([1.0, 0, 0]))


def test_group_count_uses_each_groups_rows():
    method = make(ado_count="group")
    method.rows, method.seen = [[2.0, 0.0, 6.0], [4.0, 4.0, 0.0]], np.array([6.0, 4.0, 6.0])
    assert method.counts().tolist() == [[2.0, 0.0, 6.0], [6.0, 4.0, 6.0]]
    assert method.current_count().tolist() == [6.0, 4.0, 6.0]
    method.count = "total"
    assert method.counts().tolist() == [[8.0] * 3, [16.0] * 3] and method.current_count().tolist() == [16.0] * 3


def test_micro_batches_and_ranks_give_the_step_of_one_process():
    rng = np.random.default_rng(3)
    batches = [fake_batch(rng.integers(0, 3, 12), rng.uniform(2, 6, 12), rng) for _ in range(40)]
    small = dict(total=40, ado_start_step=31, ado_update_steps=31, ado_ignore_steps=0)
    one, first, second = two_ranks_equal_one(lambda: make(**small), batches, 3)
    assert one["params"] is not None
    for state in (first, second):
        assert np.asarray(state["losses"]) == pytest.approx(np.asarray(one["losses"]), rel=1e-12)
        assert state["rows"] == one["rows"] and state["policy"] == pytest.approx(one["policy"], rel=1e-9)
    a = drive(make(**small), 0, 40, law, np.random.default_rng(4), micro=1)
    b = drive(make(**small), 0, 40, law, np.random.default_rng(4), micro=3)
    assert np.asarray(b.losses) == pytest.approx(np.asarray(a.losses), rel=1e-12)
    assert b.policy == pytest.approx(a.policy, rel=1e-9)


def test_deterministic_and_resume_through_json_equals_one_run():
    small = dict(total=110, ado_start_step=50, ado_update_steps=50, ado_ignore_steps=5)
    straight = drive(make(**small), 0, 110, law, np.random.default_rng(5), noise=0.05)
    again = drive(make(**small), 0, 110, law, np.random.default_rng(5), noise=0.05)
    assert json.dumps(again.artifacts()) == json.dumps(straight.artifacts())
    assert [f["step"] for f in straight.fits] == [50, 100] and straight.params is not None
    rng = np.random.default_rng(5)
    first = drive(make(**small), 0, 77, law, rng, noise=0.05)  # between the two refits
    resumed = make(**small)
    resumed.load_state_dict(json_round_trip(first.state_dict()))
    drive(resumed, 77, 110, law, rng, noise=0.05)
    assert resumed.state_dict() == straight.state_dict()
    assert json.dumps(resumed.artifacts()) == json.dumps(straight.artifacts())


@pytest.mark.parametrize("extra, needle", [
    (["--ado_update_steps", "0"], "--ado_update_steps"),
    (["--ado_start_step", "-1"], "--ado_start_step"),
    (["--ado_ignore_steps", "-5"], "--ado_ignore_steps"),
    (["--ado_gamma1", "0"], "--ado_gamma1"),
    (["--ado_gamma2", "1.5"], "--ado_gamma2"),
    (["--ado_s", "inf"], "--ado_s"),
    (["--ado_delta_min", "0.6"], "--ado_delta_min"),
    (["--ado_count", "rows"], "--ado_count"),
])
def test_bad_flags_are_one_line_exit_2(tiny_shards, tmp_path, capsys, extra, needle):
    code, err = _main_in_process(paper_flags(tiny_shards, str(tmp_path / "o"), "--max_steps", "4", "--ado", *extra),
                                 capsys)
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not os.path.exists(tmp_path / "o") or not os.listdir(tmp_path / "o")


def test_end_to_end_run_and_its_weights_feed_a_static_run(tiny_shards, tmp_path):
    import main

    online = str(tmp_path / "online")
    main.main(paper_flags(tiny_shards, online, "--max_steps", "32", "--ado", "--ado_start_step", "32",
                          "--ado_update_steps", "16", "--ado_ignore_steps", "0", "--log_every", "8",
                          "--num_ckpts", "1", "--max_eval_samples", "2"))
    run = only_run_dir(online)
    learned = json.load(open(os.path.join(run, "ado.json")))
    assert learned["groups"] == ["arxiv", "stackexchange"] and learned["steps"] == 32
    (fit,) = learned["fits"]
    assert fit["step"] == 32 and fit["points"] == 4 and fit["accepted"], fit
    assert [t["step"] for t in learned["trajectory"]] == [8, 16, 24, 32]
    assert learned["trajectory"][-1]["rho"] is not None
    avg = list(learned["average_weights"].values())
    assert abs(sum(avg) - 1) < 1e-9 and min(avg) > 0
    logged = [json.loads(x)["method"] for x in open(os.path.join(run, "metrics.jsonl")) if '"method"' in x]
    assert "ado_alpha" in logged[-1] and "ado_alpha" not in logged[0] and "ado_policy" in logged[0]
    final = str(tmp_path / "final")
    main.main(paper_flags(tiny_shards, final, "--max_steps", "2", "--sample_rule", "mixture",
                          "--proportions_file", os.path.join(run, "ado.json"), "--num_ckpts", "1"))
    config = json.load(open(os.path.join(only_run_dir(final), "config.json")))
    assert config["initial_weights"] == pytest.approx(learned["average_weights"])

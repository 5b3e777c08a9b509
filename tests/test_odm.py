"""ODM: EXP3's formulas by hand, the unbiased reward for mixed batches, the direction of the weights in a
synthetic environment with known per-group losses, gradient accumulation and ranks, determinism, resume
through JSON, refusals, and one end-to-end run whose average weights feed a static run."""
import json
import math
import os

import numpy as np
import pytest

from methods.base import RunFacts
from methods.odm import OdmMethod, OdmOptions, exp3_policy, exploration_rate, reward_estimates
from online_env import drive, fake_batch, json_round_trip, two_ranks_equal_one
from test_main_e2e import _main_in_process, only_run_dir, paper_flags

GROUPS = ["arxiv", "book", "stackexchange"]
LOSS = {0: 2.0, 1: 5.0, 2: 3.0}  # group 1 is the worst fitted: the bandit's best arm


def make(warmup=0, alpha=0.9, weights=None, total=1000):
    return OdmMethod(GROUPS, OdmOptions(odm_alpha=alpha, odm_warmup_steps=warmup), total, RunFacts(log_every=5),
                     initial_weights=None if weights is None else np.asarray(weights, float))


def test_exploration_rate_and_policy_by_hand():
    assert exploration_rate(0, 3) == pytest.approx(1 / 3)
    assert exploration_rate(1, 3) == pytest.approx(1 / 3)  # sqrt(ln 3 / 3) = 0.605 > 1/3: capped
    assert exploration_rate(100, 3) == pytest.approx(math.sqrt(math.log(3) / 300))
    rewards = np.array([1.0, 4.0, 2.0])
    eps_prev, eps = 0.1, 0.05
    z = np.exp(eps_prev * rewards)
    assert exp3_policy(rewards, eps_prev, eps) == pytest.approx((1 - 3 * eps) * z / z.sum() + eps)
    huge = exp3_policy(np.array([1e6, 0.0, -1e6]), 1.0, 0.01)  # no overflow: stable softmax
    assert np.all(np.isfinite(huge)) and huge == pytest.approx([0.98, 0.01, 0.01])


def test_reward_estimates_are_unbiased_for_mixed_batches():
    """Rows drawn i.i.d. from pi: E[L_i n_i / (B pi_i)] = L_i for every group, also a rarely drawn one; the
    estimate without 1/pi (the reference's paper path) would be L_i pi_i instead."""
    rng = np.random.default_rng(0)
    pi, losses, b = np.array([0.7, 0.25, 0.05]), np.array([2.0, 5.0, 3.0]), 16
    draws = np.array([reward_estimates(losses, np.bincount(rng.choice(3, b, p=pi), minlength=3).astype(float), pi)
                      for _ in range(8000)])
    assert draws.mean(0) == pytest.approx(losses, rel=0.05)
    assert reward_estimates(losses, np.array([16.0, 0.0, 0.0]), pi)[1:].tolist() == [0.0, 0.0]  # absent groups


def test_weight_moves_to_the_highest_loss_group_after_warmup():
    rng = np.random.default_rng(1)
    seen = []
    method = drive(make(warmup=20, weights=[0.5, 0.25, 0.25]), 0, 400, lambda g, s: LOSS[g], rng, noise=0.3,
                   seen=seen)
    for w in seen[:20]:  # the warmup trains on the initial weights and learns nothing
        assert w.tolist() == [0.5, 0.25, 0.25]
    assert method.updates == 380 and method.steps == 400
    final = method.mixture(400).weights
    assert np.argsort(final).tolist() == [0, 2, 1], final  # ordered like the losses
    assert final[1] > 1 / 3 and method.rewards == pytest.approx([2.0, 5.0, 3.0], rel=0.25)
    assert method.eps == pytest.approx(exploration_rate(400, 3))
    avg = method.average_weights()
    assert avg == pytest.approx(np.mean(seen, axis=0)) and abs(avg.sum() - 1) < 1e-12


def test_micro_batches_and_ranks_give_the_step_of_one_process():
    rng = np.random.default_rng(2)
    batches = [fake_batch(rng.integers(0, 3, 12), rng.uniform(1, 6, 12), rng) for _ in range(6)]
    one, first, second = two_ranks_equal_one(make, batches, 3)
    for state in (first, second):
        for key in ("policy", "rewards", "estimates", "losses"):
            assert state[key] == pytest.approx(one[key], rel=1e-12), key
    # four micro-batches per step: the same trajectory as one
    a = drive(make(), 0, 30, lambda g, s: LOSS[g] + 0.01 * s, np.random.default_rng(3), micro=1)
    b = drive(make(), 0, 30, lambda g, s: LOSS[g] + 0.01 * s, np.random.default_rng(3), micro=4)
    assert b.policy == pytest.approx(a.policy, rel=1e-12) and b.rewards == pytest.approx(a.rewards, rel=1e-12)


def test_deterministic_and_resume_through_json_equals_one_run():
    loss = lambda g, s: LOSS[g] / (1 + 0.01 * s)  # noqa: E731
    straight = drive(make(warmup=5), 0, 60, loss, np.random.default_rng(4), noise=0.2)
    again = drive(make(warmup=5), 0, 60, loss, np.random.default_rng(4), noise=0.2)
    assert json.dumps(again.artifacts()) == json.dumps(straight.artifacts())
    rng = np.random.default_rng(4)
    first = drive(make(warmup=5), 0, 27, loss, rng, noise=0.2)
    resumed = make(warmup=5)
    resumed.load_state_dict(json_round_trip(first.state_dict()))
    drive(resumed, 27, 60, loss, rng, noise=0.2)
    assert resumed.state_dict() == straight.state_dict()
    assert json.dumps(resumed.artifacts()) == json.dumps(straight.artifacts())
    with pytest.raises(Exception, match="groups"):
        OdmMethod(["a", "b"]).load_state_dict(straight.state_dict())


@pytest.mark.parametrize("extra, needle", [
    (["--odm_alpha", "1"], "--odm_alpha"),
    (["--odm_alpha", "-0.1"], "--odm_alpha"),
    (["--odm_alpha", "nan"], "--odm_alpha"),
    (["--odm_warmup_steps", "-1"], "--odm_warmup_steps"),
    (["--odm_warmup_steps", "2.5"], "--odm_warmup_steps"),
])
def test_bad_flags_are_one_line_exit_2(tiny_shards, tmp_path, capsys, extra, needle):
    code, err = _main_in_process(paper_flags(tiny_shards, str(tmp_path / "o"), "--max_steps", "4", "--odm", *extra),
                                 capsys)
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not os.path.exists(tmp_path / "o") or not os.listdir(tmp_path / "o")


def test_end_to_end_run_and_its_weights_feed_a_static_run(tiny_shards, tmp_path):
    import main

    online = str(tmp_path / "online")
    main.main(paper_flags(tiny_shards, online, "--max_steps", "8", "--method", "odm", "--odm_warmup_steps", "2",
                          "--log_every", "2", "--num_ckpts", "1"))
    run = only_run_dir(online)
    learned = json.load(open(os.path.join(run, "odm.json")))
    assert learned["groups"] == ["arxiv", "stackexchange"] and learned["steps"] == 8 and learned["updates"] == 6
    assert [t["step"] for t in learned["trajectory"]] == [2, 4, 6, 8]
    avg = list(learned["average_weights"].values())
    assert abs(sum(avg) - 1) < 1e-9 and min(avg) > 0
    lines = [json.loads(x) for x in open(os.path.join(run, "metrics.jsonl"))]
    assert all(set(x["method"]["odm_policy"]) == {"arxiv", "stackexchange"} for x in lines if "method" in x)
    final = str(tmp_path / "final")
    main.main(paper_flags(tiny_shards, final, "--max_steps", "2", "--sample_rule", "mixture",
                          "--proportions_file", os.path.join(run, "odm.json"), "--num_ckpts", "1"))
    config = json.load(open(os.path.join(only_run_dir(final), "config.json")))
    assert config["initial_weights"] == pytest.approx(learned["average_weights"])

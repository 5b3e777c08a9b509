"""DoReMi: the update by hand, the training objective's normalisation, gradient accumulation through the
real loop code, the direction of the weights, absent groups, determinism, state round trip and resume.
Tiny GPT-NeoX models on synthetic tokens; no subprocess (the pipeline runs are in test_pipelines.py)."""
import contextlib
import json

import numpy as np
import pytest
import torch

from errors import UsageError
from methods import method_class
from methods.base import Mixture, StepContext
from methods.doremi import SMOOTHING, DoremiMethod
from trainer.args import build_parser
from trainer.evaluation import token_losses
from trainer.loop import Trainer
from trainer.models import build_model

GROUPS = ["arxiv", "stackexchange"]
VOCAB, LENGTH = 128, 16


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return build_model("tiny", 0, data_vocab_size=VOCAB, context_length=LENGTH, attn_implementation="sdpa",
                       dtype=torch.float32)


def windows(group: int, n: int, rng) -> np.ndarray:
    """Group 0: uniform noise over the low half of the vocabulary (unlearnable); group 1: a short cycle
    through the high half (learnable in a few steps)."""
    if group == 0:
        return rng.integers(0, VOCAB // 2, size=(n, LENGTH))
    start = rng.integers(0, 4, size=(n, 1))
    return VOCAB // 2 + (start + np.arange(LENGTH)) % 4


def make_batch(group_ids, rng) -> dict:
    ids = np.concatenate([windows(g, 1, rng) for g in group_ids]).astype(np.int64)
    t = torch.from_numpy(ids)
    return {"input_ids": t, "labels": t, "group_ids": torch.tensor(group_ids)}


def make(tmp_path, *extra, total=10):
    (tmp_path / "config.json").touch()  # a saved model's marker; the tests pass the model itself as a service
    args = build_parser().parse_args(["--doremi", "--doremi_reference_model_path", str(tmp_path), *extra])
    return method_class("doremi").from_args(GROUPS, args, total)


def context(reference, step=0, micro=0, n_micro=1):
    return StepContext(step=step, total_steps=10, groups=GROUPS, micro_batch_index=micro, num_micro_batches=n_micro,
                       token_losses=lambda m, b: token_losses(m, b, contextlib.nullcontext),
                       services={"load_model": lambda path: reference}, lr=1e-3)


def train_reference_on(group: int, steps=30) -> torch.nn.Module:
    model = tiny_model(seed=1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(5)
    for _ in range(steps):
        b = make_batch([group] * 4, rng)
        losses, mask = token_losses(model, b, contextlib.nullcontext)
        ((losses * mask).sum() / mask.sum()).backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def reference_b():
    return train_reference_on(1)


def run_steps(method, model, opt, reference, rng, start, stop, seen=None):
    """Steps [start, stop) through the method interface, one micro-batch per step (the loop's order)."""
    for s in range(start, stop):
        batch = make_batch([0, 1, 0, 1], rng)
        loss = method.training_loss(model, batch, context(reference, s))
        loss.backward()
        opt.step()
        opt.zero_grad()
        method.after_step(s + 1, context(reference, s))
        if seen is not None:
            seen.append(method.domain_weights.copy())


def test_missing_reference_is_a_usage_error(tmp_path):
    args = build_parser().parse_args(["--doremi"])
    with pytest.raises(UsageError, match="--doremi_reference_model_path.*--save_model"):
        DoremiMethod.from_args(GROUPS, args, 10)
    args = build_parser().parse_args(["--doremi", "--doremi_reference_model_path", str(tmp_path / "nope")])
    with pytest.raises(UsageError, match="does not exist"):
        DoremiMethod.from_args(GROUPS, args, 10)
    args = build_parser().parse_args(["--doremi", "--doremi_reference_model_path", str(tmp_path)])
    with pytest.raises(UsageError, match="no saved model.*--save_model"):  # caught before any output is written
        DoremiMethod.from_args(GROUPS, args, 10)
    with pytest.raises(UsageError, match="--doremi_mu"):
        make(tmp_path, "--doremi_mu", "-1")


def test_update_by_hand():
    w, e, mu = np.array([0.25, 0.75]), np.array([2.0, 0.5]), 0.3
    z = np.log(w) + mu * e
    expect = np.exp(z) / np.exp(z).sum() * (1 - SMOOTHING) + SMOOTHING / 2
    np.testing.assert_allclose(DoremiMethod.update(w, e, mu), expect, rtol=1e-12)
    big = DoremiMethod.update(np.array([0.5, 0.5]), np.array([1e6, 0.0]), 1.0)  # stable, smoothed floor
    assert np.all(np.isfinite(big)) and big.sum() == pytest.approx(1.0) and big[1] == pytest.approx(SMOOTHING / 2)


def test_objective_is_weighted_sum_of_group_means(tmp_path, reference_b):
    m = make(tmp_path)
    m.domain_weights = np.array([0.2, 0.8])
    model = tiny_model()
    batch = make_batch([0, 1, 1, 0], np.random.default_rng(0))
    loss = m.training_loss(model, batch, context(reference_b))
    with torch.no_grad():
        losses, mask = token_losses(model, batch, contextlib.nullcontext)
    per_group = [float((losses[batch["group_ids"] == j] * mask[batch["group_ids"] == j]).mean()) for j in (0, 1)]
    assert float(loss.detach()) == pytest.approx(0.2 * per_group[0] + 0.8 * per_group[1], rel=1e-5)


class FixedSampler:
    """The loop's sampler interface with one fixed batch."""

    def __init__(self, ids, group_ids):
        self.ids, self.group_ids, self.weights = ids, group_ids, np.array([0.5, 0.5])

    def next_batch(self, exact=None):
        return {"input_ids": self.ids, "labels": self.ids, "group_ids": self.group_ids}

    def set_weights(self, w):
        self.weights = np.asarray(w)


def one_update(tmp_path, reference, grad_accum, group_ids):
    """One update through the real `Trainer._update` (share scaling and all); clipping is disabled by
    the caller so that a wrong loss scale cannot hide behind it. Returns (grads, weights, loss)."""
    model = tiny_model()
    grads = []

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            grads.append([p.grad.detach().clone() for p in model.parameters()])
            return super().step(closure)

    opt = Recording(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    ids = np.concatenate([windows(g, 1, np.random.default_rng(10 + i)) for i, g in enumerate(group_ids)])
    m = make(tmp_path)
    m.domain_weights = np.array([0.3, 0.7])
    trainer = Trainer(model=model, optimizer=opt, scheduler=sched, sampler=FixedSampler(ids, np.array(group_ids)),
                      method=m, evaluator=None, groups=GROUPS, device=torch.device("cpu"),
                      autocast=contextlib.nullcontext, total_steps=10, batch_size=len(group_ids), context_length=LENGTH,
                      run_dir=None, metrics=None, grad_accum=grad_accum, services={"load_model": lambda p: reference})
    loss = trainer._update(Mixture(np.array([0.5, 0.5])))
    m.after_step(1, trainer._context())
    return grads[0], m.domain_weights.copy(), float(loss), m.excess.copy()


@pytest.mark.parametrize("group_ids", [[0, 0, 1, 1], [0, 1, 1, 1]])
def test_gradient_accumulation_gives_the_same_update(tmp_path, reference_b, monkeypatch, group_ids):
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: torch.tensor(0.0))
    g1, w1, l1, e1 = one_update(tmp_path, reference_b, 1, group_ids)
    g2, w2, l2, e2 = one_update(tmp_path, reference_b, 2, group_ids)
    assert l1 == pytest.approx(l2, rel=1e-5)
    np.testing.assert_allclose(e1, e2, rtol=1e-6)
    np.testing.assert_allclose(w1, w2, rtol=1e-9)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_upweights_the_group_with_the_largest_excess(tmp_path, reference_b):
    # The reference learned group 1 (stackexchange); the fresh proxy has not: the excess is large on
    # group 1 and clipped to 0 on group 0 (the reference is no better on noise), so w_1 grows.
    m = make(tmp_path, "--doremi_mu", "0.5", "--doge_break_step_average", "3", "--log_every", "2", total=8)
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seen = []
    run_steps(m, model, opt, reference_b, np.random.default_rng(0), 0, 8, seen)
    for w in seen:
        assert np.all(np.isfinite(w)) and np.all(w > 0) and w.sum() == pytest.approx(1.0)
    assert m.excess[1] > m.excess[0] >= 0
    assert seen[-1][1] > seen[0][1] > 0.5
    art = m.artifacts()["doremi.json"]
    assert art["groups"] == GROUPS and art["updates"] == 8
    avg = np.array([art["average_weights"][g] for g in GROUPS])
    np.testing.assert_allclose(avg, np.mean(seen, axis=0) / np.mean(seen, axis=0).sum(), rtol=1e-12)
    assert [h["step"] for h in art["history"]] == [5, 6, 7]  # the last 3 measured steps before the end
    assert [t["step"] for t in art["trajectory"]] == [2, 4, 6, 8]
    assert set(m.log_values()) == {"domain_weights", "average_weights", "excess"}
    json.dumps(art)
    # a learned-weights file feeds a final static run
    from trainer.mixture import load_proportions_file

    path = tmp_path / "doremi.json"
    path.write_text(json.dumps(art))
    np.testing.assert_allclose(load_proportions_file(str(path), GROUPS), avg / avg.sum())


def test_absent_group_keeps_its_previous_excess(tmp_path, reference_b):
    m = make(tmp_path)
    model = tiny_model()
    rng = np.random.default_rng(0)
    m.training_loss(model, make_batch([0, 1], rng), context(reference_b))
    m.after_step(1, None)
    before = m.excess.copy()
    assert before[1] > 0
    m.training_loss(model, make_batch([0, 0], rng), context(reference_b, 1))
    m.after_step(2, None)
    assert m.excess[1] == before[1]


def test_determinism_state_round_trip_and_resume(tmp_path, reference_b):
    def fresh():
        model = tiny_model()
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3)

    a = make(tmp_path, "--doremi_mu", "0.5")
    model_a, opt_a = fresh()
    run_steps(a, model_a, opt_a, reference_b, np.random.default_rng(3), 0, 6)

    b = make(tmp_path, "--doremi_mu", "0.5")
    model_b, opt_b = fresh()
    rng = np.random.default_rng(3)
    run_steps(b, model_b, opt_b, reference_b, rng, 0, 3)
    state = json.loads(json.dumps(b.state_dict()))  # what a checkpoint holds
    model_c, opt_c = fresh()
    model_c.load_state_dict(model_b.state_dict())
    opt_c.load_state_dict(opt_b.state_dict())
    c = make(tmp_path, "--doremi_mu", "0.5")
    c.load_state_dict(state)
    assert c.state_dict() == b.state_dict()
    run_steps(c, model_c, opt_c, reference_b, rng, 3, 6)
    assert c.state_dict() == a.state_dict()
    assert c.artifacts() == a.artifacts()
    with pytest.raises(UsageError, match="groups"):
        DoremiMethod(["x", "y"], a.options, 10, a.run).load_state_dict(state)

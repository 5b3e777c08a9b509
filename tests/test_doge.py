"""DoGE: flags, the gradient it writes and its scores by hand, the direction of the weights (a validation
target made of one group's data), the analysis matrix, extreme scores, determinism, state round trip
and resume. Tiny GPT-NeoX models on synthetic tokens; the pipeline runs are in test_pipelines.py."""
import contextlib
import json

import numpy as np
import pytest
import torch

from errors import UsageError
from methods import method_class
from methods.base import StepContext
from methods.doge import ORIENTATION, DogeMethod
from trainer.args import build_parser
from trainer.evaluation import token_losses
from trainer.models import build_model

GROUPS = ["arxiv", "stackexchange"]
VOCAB, LENGTH, LR = 128, 16, 1e-2


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return build_model("tiny", 0, data_vocab_size=VOCAB, context_length=LENGTH, attn_implementation="sdpa",
                       dtype=torch.float32)


def windows(group: int, n: int, rng) -> np.ndarray:
    """Group 0: noise over the low half of the vocabulary; group 1: a short cycle in the high half."""
    if group == 0:
        return rng.integers(0, VOCAB // 2, size=(n, LENGTH))
    return VOCAB // 2 + (rng.integers(0, 4, size=(n, 1)) + np.arange(LENGTH)) % 4


def make_batch(group_ids, rng) -> dict:
    t = torch.from_numpy(np.concatenate([windows(g, 1, rng) for g in group_ids]).astype(np.int64))
    return {"input_ids": t, "labels": t, "group_ids": torch.tensor(group_ids)}


def val_of(groups):
    """A val_batch service whose windows come from `groups` (cycled), seeded by the step."""
    def val_batch(n, step=0):
        rng = np.random.default_rng([99, step])
        return make_batch([groups[i % len(groups)] for i in range(n)], rng)
    return val_batch


def make(*extra, total=10):
    args = build_parser().parse_args(["--doge", "--doge_val_batch_size", "2", "--batch_size", "4", *extra])
    return method_class("doge").from_args(GROUPS, args, total)


def context(step, val_batch, n_micro=1):
    return StepContext(step=step, total_steps=10, groups=GROUPS, num_micro_batches=n_micro,
                       token_losses=lambda m, b: token_losses(m, b, contextlib.nullcontext), val_batch=val_batch, lr=LR)


def run_steps(method, model, opt, rng, start, stop, val_batch, seen=None):
    """Steps [start, stop) as the loop runs them: the method writes .grad, the loop steps."""
    for s in range(start, stop):
        loss = method.training_loss(model, make_batch([0, 1, 0, 1], rng), context(s, val_batch))
        assert not loss.requires_grad  # the loop must skip backward
        opt.step()
        opt.zero_grad(set_to_none=True)
        method.after_step(s + 1, None)
        if seen is not None:
            seen.append(method.domain_weights.copy())


def clipped_grad(loss, params):
    g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(loss, params, retain_graph=True)])
    return g / g.norm() if g.norm() > 1 else g


def test_flags():
    with pytest.raises(UsageError, match="--gradient_accumulation_steps"):
        make("--gradient_accumulation_steps", "2")
    with pytest.raises(UsageError, match="--doge_mu"):
        make("--doge_mu", "0")
    args = build_parser().parse_args(["--doge", "--batch_size", "6"])
    assert DogeMethod.from_args(GROUPS, args, 10).val_batch_size == 6  # default: --batch_size
    with pytest.raises(UsageError, match="gradient accumulation"):
        make().training_loss(tiny_model(), make_batch([0, 1], np.random.default_rng(0)), context(0, val_of([1]), 2))


def test_written_gradient_and_scores_by_hand():
    m = make("--doge_mu", "0.05", "--doge_break_step_average", "0")
    model = tiny_model()
    batch = make_batch([0, 1, 1, 0], np.random.default_rng(1))
    val_batch = val_of([0, 1])
    loss = m.training_loss(model, batch, context(0, val_batch))
    written = torch.cat([p.grad.reshape(-1) for p in model.parameters()])

    twin = tiny_model()
    params = list(twin.parameters())
    losses, mask = token_losses(twin, batch, contextlib.nullcontext)
    gid = batch["group_ids"]
    g = [clipped_grad((losses[gid == j] * mask[gid == j]).mean(), params) for j in (0, 1)]
    vl, vm = token_losses(twin, val_batch(2, 0), contextlib.nullcontext)
    gv = clipped_grad((vl * vm).mean(), params)
    denom = (g[0].norm() + g[1].norm()) / 2 + 1e-6
    scores = np.clip([float(LR * (gj @ gv) / denom) for gj in g], 0, 5 * LR)
    np.testing.assert_allclose(m.scores, scores, rtol=1e-4, atol=1e-9)
    z = np.log([0.5, 0.5]) + scores / 0.05
    w = np.exp(z) / np.exp(z).sum()
    np.testing.assert_allclose(m.domain_weights, w, rtol=1e-4)
    torch.testing.assert_close(written, float(w[0]) * g[0] + float(w[1]) * g[1], rtol=1e-4, atol=1e-7)
    assert float(loss) == pytest.approx(float((losses * mask).mean().detach()), rel=1e-5) and not loss.requires_grad


def test_upweights_the_group_aligned_with_the_validation_target():
    # The validation target is made of group 1's data only: group 1's gradient aligns with it.
    m = make("--doge_mu", "0.01", "--doge_break_step_average", "2", "--log_every", "3", total=6)
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    seen = []
    run_steps(m, model, opt, np.random.default_rng(0), 0, 6, val_of([1]), seen)
    for w in seen:
        assert np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    assert seen[0][1] > 0.5 and seen[-1][1] > seen[0][1]
    art = m.artifacts()["doge.json"]
    assert art["orientation"] == ORIENTATION and art["updates"] == 6
    assert [h["step"] for h in art["history"]] == [4, 5]  # the analysis window: the last 2 steps
    for h in art["history"]:
        M = np.array(h["matrix"])
        assert M.shape == (2, 2) and np.all(M[0] == 0)  # group 0 is not in the validation batch
        assert M[1, 1] > M[1, 0]  # rows = validation group, columns = trained group
    assert [t["step"] for t in art["trajectory"]] == [3, 6]
    avg = np.mean(seen, axis=0)
    np.testing.assert_allclose([art["average_weights"][g] for g in GROUPS], avg / avg.sum(), rtol=1e-12)
    assert set(m.log_values()) == {"domain_weights", "average_weights", "scores"}
    json.dumps(art)


def test_extreme_scores_keep_weights_finite():
    m = make("--doge_mu", "1e-9", "--doge_break_step_average", "0")
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    seen = []
    run_steps(m, model, opt, np.random.default_rng(0), 0, 3, val_of([1]), seen)
    assert np.all(np.isfinite(m.log_weights))
    for w in seen:
        assert np.all(np.isfinite(w)) and w.sum() == pytest.approx(1.0)


def test_determinism_state_round_trip_and_resume():
    def fresh():
        model = tiny_model()
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3)

    extra = ("--doge_break_step_average", "2")
    a = make(*extra, total=5)
    model_a, opt_a = fresh()
    run_steps(a, model_a, opt_a, np.random.default_rng(3), 0, 5, val_of([0, 1]))

    b = make(*extra, total=5)
    model_b, opt_b = fresh()
    rng = np.random.default_rng(3)
    run_steps(b, model_b, opt_b, rng, 0, 2, val_of([0, 1]))
    state = json.loads(json.dumps(b.state_dict()))
    model_c, opt_c = fresh()
    model_c.load_state_dict(model_b.state_dict())
    opt_c.load_state_dict(opt_b.state_dict())
    c = make(*extra, total=5)
    c.load_state_dict(state)
    assert c.state_dict() == b.state_dict()
    run_steps(c, model_c, opt_c, rng, 2, 5, val_of([0, 1]))
    assert c.state_dict() == a.state_dict()
    assert c.artifacts() == a.artifacts()
    with pytest.raises(UsageError, match="groups"):
        DogeMethod(["x", "y"], a.options, 5, a.run).load_state_dict(state)

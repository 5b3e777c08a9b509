"""A synthetic training environment for the online methods that read their own training losses (ODM, ADO):
no model, the per-token losses of every row are fabricated from a known per-group loss curve, and the method's
hooks are called in the loop's order (mixture, training_loss per micro-batch, after_step)."""
import json

import numpy as np
import torch

from methods.base import StepContext

LENGTH = 8  # tokens per row


def fake_batch(group_ids, row_losses, rng, noise=0.0, masked_last=True) -> dict:
    """A batch whose rows carry their per-token losses: row i's tokens average row_losses[i] (plus noise).
    The last token of every row is masked out (labels -100) when masked_last, as padding would be."""
    b = len(group_ids)
    tokens = np.repeat(np.asarray(row_losses, np.float64)[:, None], LENGTH, axis=1)
    if noise:
        tokens = tokens + rng.normal(0.0, noise, size=tokens.shape)
    mask = np.ones((b, LENGTH))
    if masked_last:
        mask[:, -1] = 0.0
        tokens[:, -1] = 1e6  # must not count
    return {"group_ids": torch.as_tensor(np.asarray(group_ids), dtype=torch.int64),
            "losses": torch.as_tensor(tokens, dtype=torch.float32), "mask": torch.as_tensor(mask, dtype=torch.float32)}


def context(step, groups, total=1000, micro=0, n_micro=1, sum_over_ranks=None):
    return StepContext(step=step, total_steps=total, groups=groups, micro_batch_index=micro, num_micro_batches=n_micro,
                       token_losses=lambda model, batch: (batch["losses"], batch["mask"]),
                       sum_over_ranks=sum_over_ranks or (lambda a: a))


def split(batch, parts):
    """The batch's rows in `parts` consecutive micro-batches."""
    idx = np.array_split(np.arange(len(batch["group_ids"])), parts)
    return [{key: value[i] for key, value in batch.items()} for i in idx]


def check_simplex(weights, k):
    w = np.asarray(weights, np.float64)
    assert w.shape == (k,) and np.all(np.isfinite(w)) and np.all(w >= 0) and abs(w.sum() - 1.0) < 1e-9, w


def drive(method, start, stop, row_loss, rng, batch_rows=16, micro=1, noise=0.0, seen=None):
    """Steps [start, stop): draw the rows from the method's mixture, fabricate their losses with
    row_loss(group, step) and train them in `micro` micro-batches. `seen` collects every step's weights."""
    k = method.k
    for s in range(start, stop):
        weights = method.mixture(s).weights
        check_simplex(weights, k)
        if seen is not None:
            seen.append(np.asarray(weights).copy())
        gids = rng.choice(k, size=batch_rows, p=weights)
        batch = fake_batch(gids, [row_loss(g, s) for g in gids], rng, noise)
        for m, part in enumerate(split(batch, micro)):
            loss = method.training_loss(None, part, context(s, method.groups, micro=m, n_micro=micro))
            assert torch.isfinite(loss)
        method.after_step(s + 1, context(s, method.groups))
    return method


def json_round_trip(state: dict) -> dict:
    return json.loads(json.dumps(state))


def two_ranks_equal_one(make, batches, k):
    """Each batch split between two 'ranks' (each its own method object, summing the other's statistics as
    torchrun's all-reduce would) gives the same state as one process that trains the whole batch."""
    one, first, second = make(), make(), make()
    for s, batch in enumerate(batches):
        half = len(batch["group_ids"]) // 2
        parts = [{key: v[:half] for key, v in batch.items()}, {key: v[half:] for key, v in batch.items()}]
        one.training_loss(None, batch, context(s, one.groups))
        first.training_loss(None, parts[0], context(s, one.groups))
        second.training_loss(None, parts[1], context(s, one.groups))
        sums = [np.stack([m.meter.loss_sum, m.meter.tokens, m.meter.rows]) for m in (first, second)]
        one.after_step(s + 1, context(s, one.groups))
        first.after_step(s + 1, context(s, one.groups, sum_over_ranks=lambda a: a + sums[1]))
        second.after_step(s + 1, context(s, one.groups, sum_over_ranks=lambda a: sums[0] + a))
    return one.state_dict(), first.state_dict(), second.state_dict()

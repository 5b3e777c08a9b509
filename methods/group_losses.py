"""Per-group training-loss statistics of one optimizer step, for the online methods that decide from the
losses they train on (ODM, ADO): no extra forward pass.

`training_loss` adds each micro-batch (`add`); `after_step` takes the step's totals (`take`), summed over
the ranks of a torchrun job first, so that every rank decides on the whole global batch and the same way.
The sums are empty between steps (checkpoints are taken after `after_step`), so they are never state.
"""
from __future__ import annotations

import numpy as np
import torch

from methods.doremi import per_group_sums


class GroupLossMeter:
    """Sums of token losses, counted tokens and rows per group over the micro-batches of one step."""

    def __init__(self, k: int):
        self.k = k
        self.reset()

    def reset(self) -> None:
        self.loss_sum = np.zeros(self.k)
        self.tokens = np.zeros(self.k)
        self.rows = np.zeros(self.k)

    def add(self, losses: torch.Tensor, mask: torch.Tensor, group_ids: torch.Tensor) -> None:
        gid = group_ids.long()
        self.loss_sum += per_group_sums((losses.detach() * mask).sum(1), gid, self.k)
        self.tokens += per_group_sums(mask.sum(1), gid, self.k)
        self.rows += per_group_sums(torch.ones_like(mask[:, 0]), gid, self.k)

    def take(self, ctx=None) -> tuple:
        """(loss_sum, tokens, rows) of the step over all ranks, each (k,) float64; the meter is emptied."""
        sums = np.stack([self.loss_sum, self.tokens, self.rows])
        if ctx is not None:
            sums = np.asarray(ctx.sum_over_ranks(sums), dtype=np.float64)
        self.reset()
        return sums[0], sums[1], sums[2]


def mean_losses(loss_sum: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Token-mean loss per group; NaN for a group with no counted token in the step."""
    return np.where(tokens > 0, loss_sum / np.maximum(tokens, 1.0), np.nan)


def mean_token_loss_tracked(meter: GroupLossMeter, model, batch, ctx):
    """The default objective (mean cross-entropy over the counted tokens), recording the per-group sums."""
    losses, mask = ctx.token_losses(model, batch)
    meter.add(losses, mask, batch["group_ids"])
    return (losses * mask).sum() / mask.sum().clamp_min(1.0)

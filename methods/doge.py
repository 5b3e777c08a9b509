"""DoGE (Fan et al. 2024): the proxy run that learns domain weights by gradient alignment.

- Per step: per-group training gradients g_j and the gradient g_val of a validation batch stratified
  over the groups, each clipped to norm 1; score_j = lr <g_j, g_val> / (mean_j |g_j| + 1e-6), clipped
  to [0, 5 lr]; w <- softmax(log w + score / doge_mu); the parameter gradient is sum_j w_j g_j.
- Over the analysis window (--doge_break_step_average steps before --break_steps or the end) the full
  k x k alignment matrix is recorded. Gradient accumulation is refused (per-group gradients need the
  whole batch).
- Artefact `doge.json`: average_weights (the run's output), history, trajectory. Step by step:
  docs/methods.md; versus the paper's code: docs/deviations.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from errors import UsageError
from methods.base import MixingMethod
from methods.doremi import AnalysisWindowOptions, analysis_window, as_dict, require_positive
from options import option


@dataclass(frozen=True)
class DogeOptions(AnalysisWindowOptions):
    """DoGE's proxy run."""

    doge_mu: float = option(0.01, "DoGE temperature")
    doge_val_batch_size: Optional[int] = option(None, "validation windows per DoGE step (default: --batch_size)")

ORIENTATION = "rows = validation (evaluated) group, columns = trained group"
SCORE_EPS = 1e-6
SCORE_CAP = 5.0  # scores are clipped to [0, SCORE_CAP * lr]


def flat_grad(loss: torch.Tensor, params: list, retain: bool, clip: bool = True) -> torch.Tensor:
    """The gradient of `loss` as one float32 vector, clipped to norm 1 (as the paper clipped each)."""
    grads = torch.autograd.grad(loss, params, retain_graph=retain, allow_unused=True)
    flat = torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1).float() for g, p in zip(grads, params)])
    return clip_to_unit_norm(flat) if clip else flat


def clip_to_unit_norm(flat: torch.Tensor) -> torch.Tensor:
    norm = flat.norm()
    return flat / norm if norm > 1.0 else flat


def group_means(losses: torch.Tensor, mask: torch.Tensor, gid: torch.Tensor, k: int) -> dict:
    """{group index: mean token loss (a graph-carrying scalar)} for the groups present."""
    out = {}
    for j in range(k):
        rows = gid == j
        if bool(rows.any()):
            out[j] = (losses[rows] * mask[rows]).sum() / mask[rows].sum().clamp_min(1.0)
    return out


class DogeMethod(MixingMethod):
    """DoGE proxy run. Flags: --doge_mu (temperature; 0.01, full setting 0.1), --doge_val_batch_size,
    --doge_break_step_average (analysis window), --log_every (spacing of `trajectory`)."""

    name = "doge"
    Options = DogeOptions
    writes_gradients = True

    def __init__(self, groups: list, options: DogeOptions = None, total_steps: int = 0, run=None,
                 initial_weights: Optional[np.ndarray] = None):
        super().__init__(groups, options, total_steps, run, initial_weights=initial_weights)  # sampling mixture
        who, o = "--doge", self.options
        accum = int(self.run.gradient_accumulation_steps or 1)
        if accum > 1:
            raise UsageError(f"{who}: --gradient_accumulation_steps {accum} is not supported: DoGE computes one "
                             "gradient per group on the whole batch; use --gradient_accumulation_steps 1 (lower "
                             "--batch_size if memory is short)")
        self.mu = require_positive(o.doge_mu, "--doge_mu", who, allow_zero=False)
        val_bs = self.run.batch_size if o.doge_val_batch_size is None else o.doge_val_batch_size
        if val_bs is None or int(val_bs) < 1:
            raise UsageError(f"{who}: --doge_val_batch_size must be a positive number of validation windows "
                             "(the paper's scripts: 2 for two groups, 4 otherwise)")
        self.val_batch_size = int(val_bs)
        self.log_every = max(1, int(self.run.log_every or 10))
        self.window = analysis_window(o, self.run, self.total_steps)
        self.log_weights = np.full(self.k, -np.log(self.k))
        self.scores = np.zeros(self.k)
        self.weight_sum = np.zeros(self.k)
        self.updates = 0
        self.history: list = []
        self.trajectory: list = []

    @property
    def domain_weights(self) -> np.ndarray:
        w = np.exp(self.log_weights - self.log_weights.max())
        return w / w.sum()

    def training_loss(self, model, batch, ctx):
        if ctx.num_micro_batches > 1:
            raise UsageError("--doge: gradient accumulation is not supported; use --gradient_accumulation_steps 1")
        if ctx.val_batch is None:
            raise UsageError("--doge needs validation data (the val split of every group) for its target gradient")
        params = [p for p in model.parameters() if p.requires_grad]
        losses, mask = ctx.token_losses(model, batch)
        train = group_means(losses, mask, batch["group_ids"].long(), self.k)
        present, train_grads = self._group_grads(train, mask, batch["group_ids"].long(), params, ctx)

        val = ctx.val_batch(self.val_batch_size, ctx.step)
        vlosses, vmask = ctx.token_losses(model, val)
        in_window = self.window[0] <= ctx.step < self.window[1]
        matrix = None
        if in_window:  # k extra backward passes: only in the analysis window
            matrix = np.zeros((self.k, self.k))
            for i, loss_i in group_means(vlosses, vmask, val["group_ids"].long(), self.k).items():
                g = flat_grad(loss_i, params, retain=True)  # one row at a time keeps memory at k + 2 vectors
                matrix[i, present] = (train_grads @ g).double().cpu().numpy()
                del g
        val_loss = (vlosses * vmask).sum() / vmask.sum().clamp_min(1.0)
        g_val = flat_grad(val_loss, params, retain=False)

        lr = float(ctx.lr)
        denom = float(train_grads.norm(dim=1).mean()) + SCORE_EPS
        dots = (train_grads @ g_val).double().cpu().numpy()
        self.scores = np.zeros(self.k)
        self.scores[present] = np.clip(lr * dots / denom, 0.0, SCORE_CAP * lr)
        z = self.log_weights + self.scores / self.mu
        self.log_weights = z - (z.max() + np.log(np.exp(z - z.max()).sum()))  # log-softmax, stays finite
        w = self.domain_weights

        combined = torch.as_tensor(w[present], dtype=train_grads.dtype, device=train_grads.device) @ train_grads
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = combined[offset:offset + n].view_as(p).to(p.dtype).clone()
            offset += n
        self._record(ctx.step, w, matrix)
        with torch.no_grad():
            return (losses * mask).sum() / mask.sum().clamp_min(1.0)

    def _group_grads(self, train: dict, mask, gid, params, ctx):
        """(groups with rows in the batch, each group's mean gradient clipped to norm 1). Under torchrun the
        batch is the global one: each rank's per-group mean gradient, weighted by its share of the group's
        tokens, is summed over the ranks (= the gradient of the group's mean over the global batch) before
        the clip; in one process the share is 1 and the sum is the gradient itself."""
        counts = torch.zeros((2, self.k), dtype=torch.float64, device=mask.device)  # rows, scored tokens
        counts[0].index_add_(0, gid, torch.ones_like(gid, dtype=torch.float64))
        counts[1].index_add_(0, gid, mask.sum(1).double())
        mine_tokens = counts[1].cpu().numpy()
        rows, tokens = ctx.sum_over_ranks(counts.cpu().numpy())
        present = [j for j in range(self.k) if rows[j] > 0]
        mine = [j for j in present if j in train]
        size = sum(p.numel() for p in params)
        # the train graph is kept until this rank's last group gradient has been taken
        grads = [flat_grad(train[j], params, retain=j != mine[-1], clip=False)
                 * (float(mine_tokens[j] / tokens[j]) if tokens[j] > 0 else 0.0)
                 if j in train else torch.zeros(size, device=mask.device) for j in present]
        summed = ctx.sum_over_ranks(torch.stack(grads))
        return present, torch.stack([clip_to_unit_norm(row) for row in summed])

    def _record(self, measured: int, w: np.ndarray, matrix) -> None:
        self.weight_sum += w
        self.updates += 1
        done = measured + 1
        if matrix is not None:
            self.history.append({"step": measured, "weights": w.tolist(), "scores": self.scores.tolist(),
                                 "matrix": matrix.tolist()})
        if done % self.log_every == 0 or done == self.total_steps:
            self.trajectory.append({"step": done, "weights": w.tolist(), "scores": self.scores.tolist()})

    def average_weights(self) -> np.ndarray:
        if self.updates == 0:
            return self.domain_weights
        avg = self.weight_sum / self.updates
        return avg / avg.sum()

    # -- what the loop records ----------------------------------------------------------------------
    def log_values(self) -> dict:
        return {"domain_weights": as_dict(self.groups, self.domain_weights),
                "average_weights": as_dict(self.groups, self.average_weights()),
                "scores": as_dict(self.groups, self.scores)}

    def artifacts(self) -> dict:
        settings = {"doge_mu": self.mu, "val_batch_size": self.val_batch_size,
                    "sampling_weights": self.weights.tolist(), "analysis_window": list(self.window),
                    "total_steps": self.total_steps}
        return {"doge.json": {"groups": self.groups, "orientation": ORIENTATION, "settings": settings,
                              "updates": self.updates,
                              "average_weights": as_dict(self.groups, self.average_weights()),
                              "final_weights": as_dict(self.groups, self.domain_weights),
                              "history": self.history, "trajectory": self.trajectory}}

    def state_dict(self) -> dict:
        return {"groups": self.groups, "sampling_weights": self.weights.tolist(),
                "log_weights": self.log_weights.tolist(), "scores": self.scores.tolist(),
                "weight_sum": self.weight_sum.tolist(), "updates": self.updates,
                "history": self.history, "trajectory": self.trajectory}

    def load_state_dict(self, state: dict) -> None:
        if list(state.get("groups", self.groups)) != self.groups:
            raise UsageError(f"DoGE state is for groups {state['groups']}, the run has {self.groups}")
        self.weights = np.asarray(state["sampling_weights"], dtype=np.float64)
        self.log_weights = np.asarray(state["log_weights"], dtype=np.float64)
        self.scores = np.asarray(state["scores"], dtype=np.float64)
        self.weight_sum = np.asarray(state["weight_sum"], dtype=np.float64)
        self.updates = int(state["updates"])
        self.history = list(state["history"])
        self.trajectory = list(state["trajectory"])

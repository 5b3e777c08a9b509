"""DoReMi (Xie et al. 2023): the proxy run that learns domain weights online.

- Batches come from a fixed mixture q (uniform by default); a frozen reference model (a stratified run
  saved with --save_model) scores the same sequences.
- Per step: excess e_j = max(l_j - r_j, 0) per group present; log w += doremi_mu * e, softmax, smoothing
  with 1e-3 of uniform; the training loss weights each token of group g by w_g / q_g.
- w is updated once per step after all micro-batches (gradient accumulation gives the same update).
- Artefact `doremi.json`: average_weights (the run's output, read by --proportions_file), history over
  the analysis window, trajectory. Step by step: docs/methods.md; versus the paper's code: docs/deviations.md.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from errors import UsageError
from methods.base import MixingMethod, RunFacts
from options import option

SMOOTHING = 1e-3  # the paper's mixing with uniform after every update


@dataclass(frozen=True)
class AnalysisWindowOptions:
    """DoReMi and DoGE keep their full per-step measurements over a window, for the parameter analysis."""

    doge_break_step_average: int = option(5, "steps before --break_steps whose full matrices are recorded "
                                          "(analysis)")


@dataclass(frozen=True)
class DoremiOptions(AnalysisWindowOptions):
    """DoReMi's proxy run; --doremi_reference_model_path is required."""

    doremi_reference_model_path: Optional[str] = option(
        None, "reference model: a run directory saved with --save_model, or its model/ folder")
    doremi_mu: float = option(1.0, "DoReMi step size")


def analysis_window(options: AnalysisWindowOptions, run: RunFacts, total_steps: int) -> tuple:
    """[start, end): the steps whose measurements are kept in full for the parameter analysis."""
    end = run.break_steps
    end = int(total_steps) if end is None or int(end) > total_steps else int(end)
    n = max(0, int(options.doge_break_step_average or 0))
    return max(0, end - n), end


def per_group_sums(values: torch.Tensor, group_ids: torch.Tensor, k: int) -> np.ndarray:
    """Sum of per-sequence `values` (B,) by group, as float64 numpy (k,)."""
    out = torch.zeros(k, dtype=torch.float64, device=values.device)
    out.index_add_(0, group_ids.long(), values.detach().double())
    return out.cpu().numpy()


def require_positive(value, flag: str, who: str, allow_zero: bool = True) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise UsageError(f"{who}: {flag} must be a finite number {bound}, got {value}")
    return value


def as_dict(groups, values) -> dict:
    return {g: float(v) for g, v in zip(groups, values)}


class DoremiMethod(MixingMethod):
    """DoReMi proxy run. Flags: --doremi_reference_model_path (run dir saved with --save_model, or its
    model/ folder), --doremi_mu (step size of the exponentiated update; the paper's scripts use 0.01),
    --doge_break_step_average (steps kept in `history`), --log_every (spacing of `trajectory`)."""

    name = "doremi"
    Options = DoremiOptions

    def __init__(self, groups: list, options: DoremiOptions = None, total_steps: int = 0, run=None,
                 initial_weights: Optional[np.ndarray] = None):
        # self.weights (the base class's) is the sampling mixture q, uniform unless given.
        super().__init__(groups, options, total_steps, run, initial_weights=initial_weights)
        who = "--doremi"
        path = self.options.doremi_reference_model_path
        if not path:
            raise UsageError(f"{who}: --doremi_reference_model_path is required: train the reference first, a "
                             "stratified run of the same model with --save_model (e.g. scripts/<setting>/"
                             "stratified.sh), and pass its run directory or its model/ folder")
        if not os.path.exists(path):  # fail before the run directory is created, not at step 0
            raise UsageError(f"{who}: --doremi_reference_model_path {path} does not exist; pass the run directory "
                             "of a stratified run saved with --save_model, or its model/ folder")
        if not any(os.path.isfile(os.path.join(path, *sub, "config.json")) for sub in ((), ("model",))):
            raise UsageError(f"{who}: --doremi_reference_model_path {path} holds no saved model (no config.json "
                             "in it or in its model/ folder); rerun the reference with --save_model")
        self.reference_path = str(path)
        self.mu = require_positive(self.options.doremi_mu, "--doremi_mu", who)
        self.log_every = max(1, int(self.run.log_every or 10))
        self.window = analysis_window(self.options, self.run, self.total_steps)
        self.domain_weights = np.full(self.k, 1.0 / self.k)
        self.excess = np.zeros(self.k)
        self.weight_sum = np.zeros(self.k)
        self.updates = 0
        self.history: list = []
        self.trajectory: list = []
        self._reference = None  # loaded lazily, never part of the state
        self._reset_step()

    def _reset_step(self):
        """Accumulators of the current step over its micro-batches (empty between steps, hence not
        part of the state: checkpoints are taken after `after_step`)."""
        self._proxy_sum = np.zeros(self.k)
        self._ref_sum = np.zeros(self.k)
        self._tokens = np.zeros(self.k)

    # -- the loop's hooks ---------------------------------------------------------------------------
    def reference_model(self, ctx):
        if self._reference is None:
            load = (ctx.services or {}).get("load_model")
            if load is None:
                raise RuntimeError("DoReMi needs the 'load_model' service (trainer/build.py provides it)")
            self._reference = load(self.reference_path)
        return self._reference

    def training_loss(self, model, batch, ctx):
        losses, mask = ctx.token_losses(model, batch)
        with torch.no_grad():
            ref_losses, _ = ctx.token_losses(self.reference_model(ctx), batch)
        gid = batch["group_ids"].long()
        self._proxy_sum += per_group_sums((losses.detach() * mask).sum(1), gid, self.k)
        self._ref_sum += per_group_sums((ref_losses * mask).sum(1), gid, self.k)
        self._tokens += per_group_sums(mask.sum(1), gid, self.k)
        # w_g / q_g per token (see the module docstring); q_g > 0 for every group that can be drawn
        scale = np.divide(self.domain_weights, self.weights, out=np.zeros(self.k), where=self.weights > 0)
        seq_scale = torch.as_tensor(scale, dtype=losses.dtype, device=losses.device)[gid]
        return (losses * mask * seq_scale[:, None]).sum() / mask.sum().clamp_min(1.0)

    def after_step(self, step: int, ctx) -> None:
        sums = np.stack([self._proxy_sum, self._ref_sum, self._tokens])
        if ctx is not None:  # under torchrun each rank saw its own rows: decide on the sums over all of them
            sums = ctx.sum_over_ranks(sums)
        self._proxy_sum, self._ref_sum, self._tokens = sums
        present = self._tokens > 0
        if present.any():
            proxy = np.where(present, self._proxy_sum / np.maximum(self._tokens, 1), np.nan)
            ref = np.where(present, self._ref_sum / np.maximum(self._tokens, 1), np.nan)
            self.excess = np.where(present, np.maximum(proxy - ref, 0.0), self.excess)
        self._reset_step()
        self.domain_weights = self.update(self.domain_weights, self.excess, self.mu)
        self.weight_sum += self.domain_weights
        self.updates += 1
        measured = step - 1
        if self.window[0] <= measured < self.window[1]:
            self.history.append({"step": measured, "excess": self.excess.tolist(),
                                 "weights": self.domain_weights.tolist()})
        if step % self.log_every == 0 or step == self.total_steps:
            self.trajectory.append({"step": step, "excess": self.excess.tolist(),
                                    "weights": self.domain_weights.tolist()})

    @staticmethod
    def update(weights: np.ndarray, excess: np.ndarray, mu: float) -> np.ndarray:
        """Exponentiated update in the log domain, softmax, smoothing with uniform (float64)."""
        z = np.log(weights) + mu * np.asarray(excess, np.float64)
        z -= z.max()
        w = np.exp(z)
        w /= w.sum()
        k = w.size
        return (1.0 - SMOOTHING) * w + SMOOTHING / k

    def average_weights(self) -> np.ndarray:
        if self.updates == 0:
            return self.domain_weights.copy()
        avg = self.weight_sum / self.updates
        return avg / avg.sum()

    # -- what the loop records ----------------------------------------------------------------------
    def log_values(self) -> dict:
        return {"domain_weights": as_dict(self.groups, self.domain_weights),
                "average_weights": as_dict(self.groups, self.average_weights()),
                "excess": as_dict(self.groups, self.excess)}

    def artifacts(self) -> dict:
        settings = {"doremi_mu": self.mu, "smoothing": SMOOTHING, "reference": self.reference_path,
                    "sampling_weights": self.weights.tolist(), "analysis_window": list(self.window),
                    "total_steps": self.total_steps}
        return {"doremi.json": {"groups": self.groups, "settings": settings, "updates": self.updates,
                                "average_weights": as_dict(self.groups, self.average_weights()),
                                "final_weights": as_dict(self.groups, self.domain_weights),
                                "history": self.history, "trajectory": self.trajectory}}

    def state_dict(self) -> dict:
        return {"groups": self.groups, "sampling_weights": self.weights.tolist(),
                "domain_weights": self.domain_weights.tolist(), "excess": self.excess.tolist(),
                "weight_sum": self.weight_sum.tolist(), "updates": self.updates,
                "history": self.history, "trajectory": self.trajectory}

    def load_state_dict(self, state: dict) -> None:
        if list(state.get("groups", self.groups)) != self.groups:
            raise UsageError(f"DoReMi state is for groups {state['groups']}, the run has {self.groups}")
        self.weights = np.asarray(state["sampling_weights"], dtype=np.float64)
        self.domain_weights = np.asarray(state["domain_weights"], dtype=np.float64)
        self.excess = np.asarray(state["excess"], dtype=np.float64)
        self.weight_sum = np.asarray(state["weight_sum"], dtype=np.float64)
        self.updates = int(state["updates"])
        self.history = list(state["history"])
        self.trajectory = list(state["trajectory"])
        self._reset_step()

"""ADO, adaptive data optimization (Jiang et al. 2024): a scaling law per group, fitted online to the group's
training loss against the number of rows trained, and a mixture that favours the groups whose loss the law
says falls fastest. No extra forward pass: the losses are those of the training batches.

Per step t (= updates done):
- record each group's token-mean loss over its rows of the global batch (an absent group repeats its last
  value; at the first step the batch mean) and the rows per group; credit h <- (1 - g1) h + g1 (row shares);
- at t >= --ado_start_step and t % --ado_update_steps == 0: refit L_k(n) = eps_k + beta_k n^-alpha_k for every
  group (methods/scaling_fit.py) on the Savitzky-Golay-smoothed history, every 10th step after
  --ado_ignore_steps; n = all rows trained so far (--ado_count total, the reference's default) or the group's;
- once fitted: rho_k ~ mu_k h_k^s max(alpha_k, 0.05) (Lhat_k(n) - eps_k) / n, normalised, floored at
  --ado_delta_min; pi = (1 - g2) pibar + g2 rho; pibar <- (1 - 1/(t+1)) pibar + rho / (t+1). Before the first
  fit pi = mu (the initial weights).
Artefact `ado.json`: average_weights (the mean of the mixtures trained on, read by --proportions_file), every
refit's parameters, and the trajectory of policy, rho, pibar and credit. Step by step: docs/methods.md;
versus the reference code: docs/deviations.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.signal import savgol_filter

from errors import UsageError
from methods.base import Mixture, MixingMethod
from methods.doremi import as_dict
from methods.group_losses import GroupLossMeter, mean_losses, mean_token_loss_tracked
from methods.scaling_fit import fit_power_law, law_value
from options import option

SAVGOL_WINDOW = 101  # the reference's filter: window 101 (capped to the history), polynomial order 3
SAVGOL_ORDER = 3
STRIDE = 10  # every 10th smoothed point is fitted (the reference's subsampling)
MIN_POINTS = 4  # fewer points than this cannot pin down 3 parameters: no refit
MIN_EXPONENT = 0.05  # the reference's floor on alpha in the policy


@dataclass(frozen=True)
class AdoOptions:
    """ADO: per-group scaling laws fitted online to the training losses; defaults of the reference code."""

    ado_update_steps: int = option(1000, "refit the scaling laws every this many steps")
    ado_start_step: int = option(1000, "first step at which the laws are fitted (the mixture is the initial one "
                                 "before)")
    ado_ignore_steps: int = option(1000, "leading steps of the loss history left out of the fits")
    ado_gamma1: float = option(0.1, "credit smoothing: h <- (1 - gamma1) h + gamma1 (row shares of the step)")
    ado_gamma2: float = option(0.1, "policy: pi = (1 - gamma2) pibar + gamma2 rho")
    ado_s: float = option(0.5, "exponent of the credit h in the policy")
    ado_delta_min: float = option(0.01, "minimum probability of every group in rho (at most 1/k)")
    ado_count: str = option("total", "n of a group's law: all rows trained (total, the reference's default) or "
                            "the group's own rows (group)", choices=("total", "group"))


def smooth(history: np.ndarray) -> np.ndarray:
    """The Savitzky-Golay filter along time (axis 0), its window capped to the history (odd); None if too short."""
    window = min(SAVGOL_WINDOW, history.shape[0])
    window -= 1 - window % 2
    if window <= SAVGOL_ORDER:
        return None
    return savgol_filter(history, window, SAVGOL_ORDER, axis=0)


def floor_probabilities(p: np.ndarray, floor: float) -> np.ndarray:
    """The reference's clip_min_probability: raise every entry to `floor`, renormalise (floor <= 1/k)."""
    deficit = max(floor * p.size - p.sum(), 0.0)
    clipped = np.maximum(p * (1.0 - deficit) / p.sum(), floor)
    return clipped / clipped.sum()


def _check_fraction(value, flag: str, low_open=False) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or value > 1 or (low_open and value == 0):
        raise UsageError(f"--ado: {flag} must be in {'(0' if low_open else '[0'}, 1], got {value}")
    return value


class AdoMethod(MixingMethod):
    """Adaptive data optimization. Flags: --ado_update_steps, --ado_start_step, --ado_ignore_steps (the fit
    schedule), --ado_gamma1, --ado_gamma2, --ado_s, --ado_delta_min (the policy), --ado_count (n of the law);
    --log_every spaces the trajectory in ado.json."""

    name = "ado"
    Options = AdoOptions

    def __init__(self, groups: list, options: AdoOptions = None, total_steps: int = 0, run=None,
                 initial_weights: Optional[np.ndarray] = None):
        super().__init__(groups, options, total_steps, run, initial_weights=initial_weights)
        o = self.options
        if int(o.ado_update_steps) < 1:
            raise UsageError(f"--ado: --ado_update_steps must be >= 1, got {o.ado_update_steps}")
        for flag in ("ado_start_step", "ado_ignore_steps"):
            if int(getattr(o, flag)) < 0:
                raise UsageError(f"--ado: --{flag} must be >= 0, got {getattr(o, flag)}")
        self.gamma1 = _check_fraction(o.ado_gamma1, "--ado_gamma1", low_open=True)
        self.gamma2 = _check_fraction(o.ado_gamma2, "--ado_gamma2")
        self.s = float(o.ado_s)
        if not math.isfinite(self.s) or self.s < 0:
            raise UsageError(f"--ado: --ado_s must be a finite number >= 0, got {o.ado_s}")
        self.delta_min = float(o.ado_delta_min)
        if not math.isfinite(self.delta_min) or not 0 <= self.delta_min <= 1.0 / self.k:
            raise UsageError(f"--ado: --ado_delta_min must be in [0, 1/k] = [0, {1.0 / self.k:.4g}] for {self.k} "
                             f"groups, got {o.ado_delta_min}")
        if o.ado_count not in ("total", "group"):
            raise UsageError(f"--ado: --ado_count must be total or group, got {o.ado_count!r}")
        self.update_steps, self.start_step = int(o.ado_update_steps), int(o.ado_start_step)
        self.ignore_steps, self.count = int(o.ado_ignore_steps), o.ado_count
        self.log_every = max(1, int(self.run.log_every or 10))
        self.mu = self.weights.copy()
        self.policy = self.mu.copy()
        self.pibar = self.mu.copy()
        self.credit = self.mu.copy()
        self.rho = np.full(self.k, np.nan)
        self.params = None  # (k, 3): a, e, alpha per group
        self.losses: list = []  # per step: each group's loss (carried forward when absent)
        self.rows: list = []  # per step: rows per group
        self.seen = np.zeros(self.k)  # rows per group so far (the sum of `rows`, kept so a step is O(k))
        self.fits: list = []
        self.weight_sum = np.zeros(self.k)
        self.steps = 0
        self.trajectory: list = []
        self.meter = GroupLossMeter(self.k)

    # -- the loop's hooks ---------------------------------------------------------------------------
    def mixture(self, step: int) -> Mixture:
        return Mixture(self.policy.copy())

    def training_loss(self, model, batch, ctx):
        return mean_token_loss_tracked(self.meter, model, batch, ctx)

    def after_step(self, step: int, ctx) -> None:
        loss_sum, tokens, rows = self.meter.take(ctx)
        self.weight_sum += self.policy
        self.steps += 1
        self.observe(loss_sum, tokens, rows)
        if step >= self.start_step and step % self.update_steps == 0:
            self.refit(step)
        if self.params is not None:
            self.update_policy(step)
        if step % self.log_every == 0 or step == self.total_steps:
            self.trajectory.append({"step": step, "weights": self.policy.tolist(), "rho": self._rho_list(),
                                    "pibar": self.pibar.tolist(), "credit": self.credit.tolist()})

    def observe(self, loss_sum: np.ndarray, tokens: np.ndarray, rows: np.ndarray) -> None:
        """Append one step's per-group losses and rows; move the credit towards the step's row shares."""
        losses = mean_losses(loss_sum, tokens)
        if self.losses:
            fallback = np.asarray(self.losses[-1])
        else:
            fallback = np.full(self.k, loss_sum.sum() / max(tokens.sum(), 1.0))
        self.losses.append(np.where(np.isfinite(losses), losses, fallback).tolist())
        self.rows.append(rows.tolist())
        self.seen += rows
        if rows.sum() > 0:
            self.credit = (1.0 - self.gamma1) * self.credit + self.gamma1 * rows / rows.sum()

    def counts(self) -> np.ndarray:
        """n after every step so far, (T, k): all rows trained (total) or each group's own rows (group)."""
        cumulative = np.cumsum(np.asarray(self.rows, np.float64), axis=0)
        if self.count == "total":
            return np.repeat(cumulative.sum(1, keepdims=True), self.k, axis=1)
        return cumulative

    def current_count(self) -> np.ndarray:
        """n now, (k,): the last row of counts() without rebuilding the history (a policy update is per step)."""
        return np.full(self.k, self.seen.sum()) if self.count == "total" else self.seen.copy()

    def refit(self, step: int) -> None:
        """Fit every group's law; the new parameters replace the old only when every group's fit is finite."""
        smoothed = smooth(np.asarray(self.losses, np.float64))
        record = {"step": step, "points": 0, "accepted": False, "params": None}
        if smoothed is not None:
            counts = self.counts()[self.ignore_steps::STRIDE]
            smoothed = smoothed[self.ignore_steps::STRIDE]
            record["points"] = int(smoothed.shape[0])
            params = []
            for g in range(self.k):
                keep = counts[:, g] > 0
                fitted = fit_power_law(counts[keep, g], smoothed[keep, g]) if keep.sum() >= MIN_POINTS else None
                params.append(fitted)
            if all(p is not None for p in params):
                self.params = np.asarray(params, np.float64)
                record.update(accepted=True, params=[
                    {"a": float(a), "e": float(e), "alpha": float(al), "beta": math.exp(a), "eps": math.exp(e)}
                    for a, e, al in self.params])
        self.fits.append(record)

    def target(self) -> np.ndarray:
        """rho before the floor: mu h^s max(alpha, 0.05) (Lhat(n) - eps) / n at the current n (normalised)."""
        n = np.maximum(self.current_count(), 1.0)
        reducible = law_value(self.params, n) - np.exp(self.params[:, 1])
        slope = np.maximum(self.params[:, 2], MIN_EXPONENT) * reducible / n
        raw = self.mu * self.credit ** self.s * slope
        total = raw.sum()
        if not np.isfinite(total) or total <= 0:
            return self.mu.copy()
        return raw / total

    def update_policy(self, t: int) -> None:
        self.rho = floor_probabilities(self.target(), self.delta_min)
        self.policy = (1.0 - self.gamma2) * self.pibar + self.gamma2 * self.rho
        self.pibar = (1.0 - 1.0 / (t + 1)) * self.pibar + self.rho / (t + 1)

    def average_weights(self) -> np.ndarray:
        if self.steps == 0:
            return self.policy.copy()
        avg = self.weight_sum / self.steps
        return avg / avg.sum()

    def _rho_list(self):
        return None if not np.all(np.isfinite(self.rho)) else self.rho.tolist()

    # -- what the loop records ----------------------------------------------------------------------
    def log_values(self) -> dict:
        out = {"ado_policy": as_dict(self.groups, self.policy), "ado_credit": as_dict(self.groups, self.credit),
               "average_weights": as_dict(self.groups, self.average_weights())}
        if self.params is not None:
            out["ado_alpha"] = as_dict(self.groups, self.params[:, 2])
            out["ado_eps"] = as_dict(self.groups, np.exp(self.params[:, 1]))
        return out

    def artifacts(self) -> dict:
        o = self.options
        settings = {"ado_update_steps": self.update_steps, "ado_start_step": self.start_step,
                    "ado_ignore_steps": self.ignore_steps, "ado_gamma1": self.gamma1, "ado_gamma2": self.gamma2,
                    "ado_s": self.s, "ado_delta_min": self.delta_min, "ado_count": o.ado_count,
                    "initial_weights": self.mu.tolist(), "total_steps": self.total_steps,
                    "savgol": [SAVGOL_WINDOW, SAVGOL_ORDER], "stride": STRIDE}
        return {"ado.json": {"groups": self.groups, "settings": settings, "steps": self.steps,
                             "average_weights": as_dict(self.groups, self.average_weights()),
                             "final_weights": as_dict(self.groups, self.policy), "fits": self.fits,
                             "trajectory": self.trajectory}}

    def state_dict(self) -> dict:
        return {"groups": self.groups, "mu": self.mu.tolist(), "policy": self.policy.tolist(),
                "pibar": self.pibar.tolist(), "credit": self.credit.tolist(), "rho": self._rho_list(),
                "params": None if self.params is None else self.params.tolist(), "losses": list(self.losses),
                "rows": list(self.rows), "seen": self.seen.tolist(), "fits": list(self.fits),
                "weight_sum": self.weight_sum.tolist(), "steps": self.steps,
                "trajectory": self.trajectory}

    def load_state_dict(self, state: dict) -> None:
        if list(state.get("groups", self.groups)) != self.groups:
            raise UsageError(f"ADO state is for groups {state['groups']}, the run has {self.groups}")
        self.mu = np.asarray(state["mu"], dtype=np.float64)
        self.weights = self.mu.copy()
        self.policy = np.asarray(state["policy"], dtype=np.float64)
        self.pibar = np.asarray(state["pibar"], dtype=np.float64)
        self.credit = np.asarray(state["credit"], dtype=np.float64)
        self.rho = np.full(self.k, np.nan) if state["rho"] is None else np.asarray(state["rho"], dtype=np.float64)
        self.params = None if state["params"] is None else np.asarray(state["params"], dtype=np.float64)
        self.losses = [list(map(float, x)) for x in state["losses"]]
        self.rows = [list(map(float, x)) for x in state["rows"]]
        self.seen = np.asarray(state["seen"], dtype=np.float64)
        self.fits = list(state["fits"])
        self.weight_sum = np.asarray(state["weight_sum"], dtype=np.float64)
        self.steps = int(state["steps"])
        self.trajectory = list(state["trajectory"])
        self.meter.reset()

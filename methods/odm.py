"""ODM, online data mixing (Albalak et al. 2023): the groups are the arms of an EXP3 bandit whose reward is
the training loss of the group's rows, so groups that are still poorly fitted are sampled more.

Per step t (= updates done, counted from the start of the run, also during the warmup):
- exploration rate eps_t = min(1/K, sqrt(ln K / (K t))), eps_0 = 1/K;
- reward estimate rhat_i = L_i n_i / (B pi_i): L_i the token-mean loss of group i's rows of the global batch,
  n_i their number, B the batch's rows, pi the policy the batch was drawn with (0 for an absent group), so
  that E[rhat_i] = L_i for batches of several groups (docs/methods.md);
- smoothed reward R <- alpha R + (1 - alpha) rhat for every group;
- policy pi_t = (1 - K eps_t) softmax(eps_{t-1} R) + eps_t.
For the first --odm_warmup_steps steps (default: the run's --warmup_steps) the initial weights are used and
nothing is updated. Artefact `odm.json`: average_weights (the mean of the mixtures trained on, read by
--proportions_file) and the trajectory of policy, rewards and exploration rate. Step by step:
docs/methods.md; versus the reference code: docs/deviations.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from errors import UsageError
from methods.base import Mixture, MixingMethod
from methods.doremi import as_dict
from methods.group_losses import GroupLossMeter, mean_losses, mean_token_loss_tracked
from options import option


@dataclass(frozen=True)
class OdmOptions:
    """ODM: EXP3 over the groups, rewarded by each group's training loss (no extra forward pass)."""

    odm_alpha: float = option(0.9, "smoothing of the rewards, R <- alpha R + (1 - alpha) reward; 0 <= alpha < 1")
    odm_warmup_steps: Optional[int] = option(None, "steps on the initial weights before the bandit starts "
                                             "(default: --warmup_steps)")


def exploration_rate(t: int, k: int) -> float:
    """EXP3's eps_t = min(1/K, sqrt(ln K / (K t))); eps_0 = 1/K."""
    if t <= 0 or k <= 1:
        return 1.0 / k
    return min(1.0 / k, math.sqrt(math.log(k) / (k * t)))


def exp3_policy(rewards: np.ndarray, eps_prev: float, eps: float) -> np.ndarray:
    """(1 - K eps) softmax(eps_prev R) + eps, the softmax shifted by its maximum (no overflow)."""
    z = eps_prev * np.asarray(rewards, np.float64)
    w = np.exp(z - z.max())
    k = w.size
    return (1.0 - k * eps) * w / w.sum() + eps


def reward_estimates(losses: np.ndarray, rows: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """rhat_i = L_i n_i / (B pi_i) per group (0 where the group has no row): each row is one pull of its arm."""
    total = rows.sum()
    present = (rows > 0) & (drawn > 0) & np.isfinite(losses)
    if total <= 0:
        return np.zeros_like(rows)
    safe = np.where(present, drawn, 1.0)
    return np.where(present, np.nan_to_num(losses) * rows / (total * safe), 0.0)


class OdmMethod(MixingMethod):
    """Online data mixing. Flags: --odm_alpha (reward smoothing), --odm_warmup_steps (static steps first);
    --log_every spaces the trajectory in odm.json."""

    name = "odm"
    Options = OdmOptions

    def __init__(self, groups: list, options: OdmOptions = None, total_steps: int = 0, run=None,
                 initial_weights: Optional[np.ndarray] = None):
        super().__init__(groups, options, total_steps, run, initial_weights=initial_weights)
        alpha = float(self.options.odm_alpha)
        if not math.isfinite(alpha) or not 0.0 <= alpha < 1.0:
            raise UsageError(f"--odm: --odm_alpha must be in [0, 1) (the share of the old reward kept), got {alpha}")
        warmup = self.options.odm_warmup_steps
        warmup = int(self.run.warmup_steps or 0) if warmup is None else int(warmup)
        if warmup < 0:
            raise UsageError(f"--odm: --odm_warmup_steps must be >= 0, got {warmup}")
        self.alpha, self.warmup = alpha, warmup
        self.log_every = max(1, int(self.run.log_every or 10))
        self.policy = self.weights.copy()  # the bandit starts from the warmup's mixture
        self.rewards = np.zeros(self.k)
        self.estimates = np.zeros(self.k)
        self.losses = np.full(self.k, np.nan)
        self.eps = exploration_rate(0, self.k)
        self.weight_sum = np.zeros(self.k)
        self.steps = 0
        self.updates = 0
        self.trajectory: list = []
        self.meter = GroupLossMeter(self.k)

    # -- the loop's hooks ---------------------------------------------------------------------------
    def mixture(self, step: int) -> Mixture:
        return Mixture((self.weights if step < self.warmup else self.policy).copy())

    def training_loss(self, model, batch, ctx):
        return mean_token_loss_tracked(self.meter, model, batch, ctx)

    def after_step(self, step: int, ctx) -> None:
        loss_sum, tokens, rows = self.meter.take(ctx)
        drawn = self.mixture(step - 1).weights  # the distribution this step's batch came from
        self.weight_sum += drawn
        self.steps += 1
        self.losses = mean_losses(loss_sum, tokens)
        if step - 1 >= self.warmup:
            self.update(step, self.losses, rows, drawn)
        if step % self.log_every == 0 or step == self.total_steps:
            self.trajectory.append(self.snapshot(step))

    def update(self, t: int, losses: np.ndarray, rows: np.ndarray, drawn: np.ndarray) -> None:
        """One EXP3 step after update t: rewards from the batch drawn with `drawn`, then the policy for t."""
        self.estimates = reward_estimates(losses, rows, drawn)
        self.rewards = self.alpha * self.rewards + (1.0 - self.alpha) * self.estimates
        self.eps = exploration_rate(t, self.k)
        self.policy = exp3_policy(self.rewards, exploration_rate(t - 1, self.k), self.eps)
        self.updates += 1

    def average_weights(self) -> np.ndarray:
        if self.steps == 0:
            return self.mixture(0).weights
        avg = self.weight_sum / self.steps
        return avg / avg.sum()

    def snapshot(self, step: int) -> dict:
        return {"step": step, "weights": self.mixture(step).weights.tolist(), "rewards": self.rewards.tolist(),
                "reward_estimates": self.estimates.tolist(), "exploration": self.eps,
                "losses": [None if not np.isfinite(x) else float(x) for x in self.losses]}

    # -- what the loop records ----------------------------------------------------------------------
    def log_values(self) -> dict:
        return {"odm_policy": as_dict(self.groups, self.policy), "odm_rewards": as_dict(self.groups, self.rewards),
                "odm_exploration": self.eps, "average_weights": as_dict(self.groups, self.average_weights())}

    def artifacts(self) -> dict:
        settings = {"odm_alpha": self.alpha, "odm_warmup_steps": self.warmup, "initial_weights": self.weights.tolist(),
                    "total_steps": self.total_steps}
        return {"odm.json": {"groups": self.groups, "settings": settings, "steps": self.steps,
                             "updates": self.updates, "average_weights": as_dict(self.groups, self.average_weights()),
                             "final_weights": as_dict(self.groups, self.policy), "trajectory": self.trajectory}}

    def state_dict(self) -> dict:
        return {"groups": self.groups, "initial_weights": self.weights.tolist(), "policy": self.policy.tolist(),
                "rewards": self.rewards.tolist(), "estimates": self.estimates.tolist(),
                "losses": [None if not np.isfinite(x) else float(x) for x in self.losses], "eps": self.eps,
                "weight_sum": self.weight_sum.tolist(), "steps": self.steps, "updates": self.updates,
                "trajectory": self.trajectory}

    def load_state_dict(self, state: dict) -> None:
        if list(state.get("groups", self.groups)) != self.groups:
            raise UsageError(f"ODM state is for groups {state['groups']}, the run has {self.groups}")
        self.weights = np.asarray(state["initial_weights"], dtype=np.float64)
        self.policy = np.asarray(state["policy"], dtype=np.float64)
        self.rewards = np.asarray(state["rewards"], dtype=np.float64)
        self.estimates = np.asarray(state["estimates"], dtype=np.float64)
        self.losses = np.array([np.nan if x is None else x for x in state["losses"]], dtype=np.float64)
        self.eps = float(state["eps"])
        self.weight_sum = np.asarray(state["weight_sum"], dtype=np.float64)
        self.steps, self.updates = int(state["steps"]), int(state["updates"])
        self.trajectory = list(state["trajectory"])
        self.meter.reset()

"""Online Skill-it (Chen et al. 2023) as a mixing method.

- p0 ∝ exp(eta * G @ 1), G the skills graph (rows = trained group, columns = evaluated; identity without
  --graph_path; off-diagonal entries exactly 1 become 0.5).
- Every --update_steps steps: p ∝ exp(eta * G @ S), S = the sum of the last --skillit_window validation
  loss vectors, evenly spaced over the interval before the update (not cumulative).
- `SkillitSchedule` (the clock and memory) is reused by Aioli's Skill-it initialisation;
  `skillit_weights` is the pure update. Step by step: docs/methods.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from errors import UsageError
from methods.base import MixingMethod, Mixture, RoundOptions
from methods.graphs import CANONICAL, load_graph
from options import option


@dataclass(frozen=True)
class SkillitGraphOptions:
    """The skills graph and the loss window (Skill-it, and Aioli's Skill-it initialisation)."""

    graph_path: Optional[str] = option(None, "skills graph (.json or .npy)")
    skillit_window: int = option(3, "recent val-loss vectors summed per update")


@dataclass(frozen=True)
class SkillitOptions(SkillitGraphOptions, RoundOptions):
    """Skill-it: --update_steps (steps between updates) and --eta (the paper: 0.2) are required; its other
    flags are --graph_path and --skillit_window above."""


def preprocess_graph(graph) -> np.ndarray:
    """Off-diagonal entries exactly 1 -> 0.5 (the paper's guard against a saturated cross-effect)."""
    g = np.array(graph, dtype=np.float64, copy=True)
    off = ~np.eye(g.shape[0], dtype=bool)
    g[off & (g == 1.0)] = 0.5
    return g


def skillit_weights(graph, loss_sum, eta: float) -> np.ndarray:
    """p_i ∝ exp(eta * sum_j graph[i, j] * loss_sum[j]), computed stably (shifted by the max).

    graph: (k, k), rows = trained group; loss_sum: (k,) summed validation losses (nats) per evaluated
    group; returns (k,) float64 on the simplex."""
    z = float(eta) * (np.asarray(graph, np.float64) @ np.asarray(loss_sum, np.float64))
    z = z - z.max()
    w = np.exp(z)
    return w / w.sum()


def load_skillit_graph(path: Optional[str], groups: list) -> np.ndarray:
    """The preprocessed graph for a run: from `path`, or the identity when `path` is None."""
    graph = np.eye(len(groups)) if path is None else load_graph(path, groups)
    return preprocess_graph(graph)


class SkillitSchedule:
    """When Skill-it evaluates and updates, what it remembers, and its current weights.

    Units: steps (optimizer updates done). Updates happen at u = U, 2U, ... with u < end_step.
    All state is in `state_dict()` (JSON), so a resumed run follows the same trajectory."""

    def __init__(self, graph: np.ndarray, eta: float, update_steps: int, window: int, end_step: int):
        self.graph = np.asarray(graph, dtype=np.float64)
        self.eta = float(eta)
        self.update_steps = int(update_steps)
        self.window = int(window)
        self.end_step = int(end_step)
        self.gap = self.update_steps if self.window == 1 else max(1, self.update_steps // (self.window - 1))
        k = self.graph.shape[0]
        self.weights = skillit_weights(self.graph, np.ones(k), self.eta)
        self.history: list = []  # [[step, [losses...]], ...], the last `window` records
        self.updates: list = [{"step": 0, "loss_sum": None, "weights": self.weights.tolist()}]

    def is_update(self, step: int) -> bool:
        return self.update_steps <= step < self.end_step and step % self.update_steps == 0

    def record_steps(self, update_step: int) -> list:
        """The steps whose losses are summed at `update_step` (ascending, non-negative)."""
        steps = [update_step - m * self.gap for m in range(self.window)]
        return sorted(s for s in steps if s >= 0)

    def wants(self, step: int) -> bool:
        if step < 0 or step >= self.end_step:
            return False
        # the updates whose window could contain `step` lie in [step, step + (window-1)*gap]
        u = max(self.update_steps, math.ceil(step / self.update_steps) * self.update_steps)
        while u <= step + (self.window - 1) * self.gap and u < self.end_step:
            if (u - step) % self.gap == 0:
                return True
            u += self.update_steps
        return False

    def observe(self, step: int, losses: np.ndarray) -> bool:
        """Record a loss vector asked for with `wants`; at an update step, update. True when the
        weights changed. Repeated calls for the same step are ignored (idempotent)."""
        if not self.wants(step) or any(rec[0] == step for rec in self.history):
            return False
        self.history.append([int(step), np.asarray(losses, np.float64).tolist()])
        self.history = self.history[-self.window:]
        if not self.is_update(step):
            return False
        recorded = {rec[0]: rec[1] for rec in self.history}
        needed = self.record_steps(step)
        missing = [s for s in needed if s not in recorded]
        if missing:
            raise RuntimeError(f"Skill-it: validation losses for steps {missing} were asked for "
                               "(wants_eval) but never observed; the loop must honour wants_eval")
        loss_sum = np.sum([recorded[s] for s in needed], axis=0)
        self.weights = skillit_weights(self.graph, loss_sum, self.eta)
        self.updates.append({"step": int(step), "loss_sum": loss_sum.tolist(), "weights": self.weights.tolist()})
        return True

    def state_dict(self) -> dict:
        return {"weights": self.weights.tolist(), "history": self.history, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.weights = np.asarray(state["weights"], dtype=np.float64)
        self.history = [[int(s), list(map(float, v))] for s, v in state["history"]]
        self.updates = list(state["updates"])


def _require_finite(value, flag: str, who: str, example: str) -> float:
    if value is None:
        raise UsageError(f"{who}: {flag} is required ({example})")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{who}: {flag} must be a finite number >= 0, got {value}")
    return value


class SkillitMethod(MixingMethod):
    """Online Skill-it. Flags: --update_steps (steps between updates), --eta, --skillit_window
    (loss vectors summed), --graph_path (.json/.npy; identity if absent). `initial_weights` is ignored:
    Skill-it's first mixture is p0 ∝ exp(eta * G @ 1).

    Artefact `skillit.json`: {"groups", "graph" (as used, after preprocessing), "orientation",
    "settings", "updates": [{"step", "loss_sum" (null at step 0), "weights"}]}."""

    name = "skillit"
    Options = SkillitOptions

    def __init__(self, groups: list, options: SkillitOptions = None, total_steps: int = 0, run=None,
                 initial_weights: Optional[np.ndarray] = None):
        super().__init__(groups, options, total_steps, run)
        who, o = "--skillit", self.options
        update_steps = o.update_steps
        if update_steps is None:
            raise UsageError(f"{who}: --update_steps is required (steps between updates; the paper uses 500)")
        if int(update_steps) < 1:
            raise UsageError(f"{who}: --update_steps must be >= 1, got {update_steps}")
        eta = _require_finite(o.eta, "--eta", who, "the paper uses 0.2")
        window = int(o.skillit_window or 0)
        if window < 1:
            raise UsageError(f"{who}: --skillit_window must be >= 1, got {window}")
        self.graph_path = o.graph_path
        self.graph = load_skillit_graph(self.graph_path, self.groups)
        self.schedule = SkillitSchedule(self.graph, eta, int(update_steps), window, self.total_steps)
        self.weights = self.schedule.weights.copy()

    def mixture(self, step: int) -> Mixture:
        return Mixture(self.schedule.weights.copy())

    def wants_eval(self, step: int) -> bool:
        return self.schedule.wants(step)

    def observe_eval(self, step: int, losses: np.ndarray) -> None:
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
        if losses.size != self.k or not np.all(np.isfinite(losses)):
            raise RuntimeError(f"Skill-it: expected {self.k} finite validation losses at step {step}, got {losses.tolist()}")
        if self.schedule.observe(step, losses):
            self.weights = self.schedule.weights.copy()

    def log_values(self) -> dict:
        return {"skillit_updates": len(self.schedule.updates) - 1}

    def artifacts(self) -> dict:
        s = self.schedule
        settings = {"eta": s.eta, "update_steps": s.update_steps, "window": s.window, "record_gap": s.gap,
                    "graph_path": self.graph_path, "total_steps": self.total_steps}
        return {"skillit.json": {"groups": self.groups, "graph": self.graph.tolist(), "orientation": CANONICAL,
                                 "settings": settings, "updates": s.updates}}

    def state_dict(self) -> dict:
        return {"groups": self.groups, "schedule": self.schedule.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if list(state.get("groups", self.groups)) != self.groups:
            raise UsageError(f"Skill-it state is for groups {state['groups']}, the run has {self.groups}")
        self.schedule.load_state_dict(state["schedule"])
        self.weights = self.schedule.weights.copy()

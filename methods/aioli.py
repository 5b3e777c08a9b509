"""Aioli (Chen et al., arXiv 2411.05735) as a per-step state machine; reference/paper-repo.md 4.3.

Units: a step is one optimizer update; `step` counts the updates done (methods/base.py). Losses are
mean validation cross-entropies (nats) per group, ordered like the run's groups.

Timeline. [0, S0) is the prior phase (S0 = --prior_steps, 0 without it): the mixture is the
normalized --aioli_prior (uniform when only --prior_steps is given), or, with --graph_path, Skill-it
(methods/skillit.py) started from p ∝ exp(skillit_eta * G @ 1) and updated every
--skillit_update_steps steps. Then rounds of U = --update_steps steps start at r0 = S0 + r*U (one
round over the whole rest of the run with --aioli_static). A round of length len (the last one may
be shorter) runs LearnParams when delta = lp_rounds * lp_steps * k < len, i.e. when at least one step
on the updated p remains; otherwise it just trains on p (a short last round).

LearnParams of round r: evaluate L0 at r0; the probe order is the concatenation of lp_rounds
permutations of range(k) drawn from np.random.default_rng(SeedSequence([ORDER_TAG, seed, r])), so it
is a pure function of (--selection_seed, r) and needs no RNG state. Probe i trains steps
[r0 + i*lp_steps, r0 + (i+1)*lp_steps) on q_j (j = order[i]; q_j[j] = ohf, the others (1-ohf)/(k-1),
batches with exact composition), then evaluates: D[:, j] += L_before - L_after. At r0 + delta:
D /= lp_rounds; A_raw = D W^-1 (W row j = q_j; A_raw = D when ohf = 1; --aioli_diagonal:
diag(D_ii / ohf), valid for ohf = 1 too: pure one-hot probes measure the self-effect directly).
Optional --aioli_normalize_A (shift by min if negative, divide by the sum; an all-zero matrix stays
zero = no change), optional --ema g (Abar = A in the first round, then (1-g) A + g Abar; p ∝
base * exp(eta * colsum(Abar)) with base = p at the first update: non-cumulative as in the paper).
Without EMA p <- p * exp(eta * colsum(A)) (cumulative). The base is the prior (or the Skill-it mixture
at S0): the prior is carried, unlike the paper's code. A group with prior weight 0 stays at 0.

Resume: the mixture and wants_eval are pure functions of the step and the few numbers in
`state_dict()` (JSON), so a checkpoint at any step, even inside a probe, resumes identically.
Artefact `aioli.json`: {"groups", "settings", "initial_weights", "rounds": [{"round", "step" (when p
was updated), "L0", "D", "A_raw", "A" (as used), "weights", "probe_order"}], "skillit_init"}.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Optional

import numpy as np

from errors import UsageError
from methods.base import MixingMethod, Mixture, normalize_weights
from methods.skillit import SkillitSchedule, load_skillit_graph

ORDER_TAG = 0x41696F6C  # "Aiol": keeps probe orders independent of other streams seeded by (seed, round)


# -- the pure pieces (tested by hand computations) -------------------------------------------------
def probe_mixture(k: int, focal: int, ohf: float) -> np.ndarray:
    """Smoothed one-hot mixture: `ohf` on `focal`, (1 - ohf)/(k - 1) on every other group."""
    q = np.full(k, (1.0 - ohf) / (k - 1))
    q[focal] = ohf
    return q


def probe_matrix(k: int, ohf: float) -> np.ndarray:
    """W with row j = probe_mixture(k, j, ohf)."""
    return np.stack([probe_mixture(k, j, ohf) for j in range(k)])


def probe_order(seed: int, round_index: int, k: int, lp_rounds: int) -> list:
    """The probe order of a round: lp_rounds random permutations of range(k), concatenated."""
    rng = np.random.default_rng(np.random.SeedSequence([ORDER_TAG, int(seed) % 2**64, int(round_index)]))
    return [int(j) for _ in range(lp_rounds) for j in rng.permutation(k)]


def estimate_A(D: np.ndarray, ohf: float, diagonal: bool = False) -> np.ndarray:
    """Un-mix the loss drops: D = A W^T (law: drop_i(q) = sum_l A_il q_l), so A = D W^-T (solved)."""
    D = np.asarray(D, dtype=np.float64)
    if diagonal:
        return np.diag(np.diag(D) / ohf)
    if ohf == 1.0:
        return D.copy()
    W = probe_matrix(D.shape[0], ohf)
    return np.linalg.solve(W.T, D.T).T


def normalize_A(A: np.ndarray) -> np.ndarray:
    """Shift by the minimum when it is negative, then divide by the sum (a zero sum stays zero)."""
    A = np.array(A, dtype=np.float64, copy=True)
    low = A.min()
    if low < 0:
        A -= low
    total = A.sum()
    return A / total if total > 0 else A


def exp_update(base: np.ndarray, scores: np.ndarray, eta: float) -> np.ndarray:
    """normalize(base * exp(eta * scores)) in log space; zero entries of `base` stay zero."""
    with np.errstate(divide="ignore"):
        z = np.log(np.asarray(base, np.float64)) + eta * np.asarray(scores, np.float64)
    z = z - z[np.isfinite(z)].max()
    w = np.exp(z)
    return w / w.sum()


class AioliMethod(MixingMethod):
    """Aioli; see the module docstring. eval_max_windows = --lp_eval_samples (None = all)."""

    name = "aioli"

    def __init__(self, groups: list, args: Any, total_steps: int, initial_weights: Optional[np.ndarray] = None):
        # initial_weights is ignored: Aioli starts from uniform or from --aioli_prior.
        super().__init__(groups, args, total_steps)
        g = lambda name, default=None: getattr(args, name, default)  # noqa: E731
        k, T = self.k, self.total_steps
        if k < 2:
            raise UsageError(f"--aioli: needs at least 2 groups in --slice_list, got {k}")
        self.static = bool(g("aioli_static", False))
        if g("eta") is None:
            raise UsageError("--aioli: --eta is required (exponentiated-gradient step size; the paper uses 0.1-1)")
        self.eta = float(g("eta"))
        if not math.isfinite(self.eta) or self.eta < 0:
            raise UsageError(f"--eta must be a finite number >= 0, got {self.eta}")
        self.update_steps = g("update_steps")
        if self.update_steps is None and not self.static:
            raise UsageError("--aioli: --update_steps is required (round length in steps; the paper uses 250 "
                             "of 5000), or pass --aioli_static for one LearnParams at the start")
        self.lp_rounds, self.lp_steps = int(g("lp_rounds", 1)), int(g("lp_steps", 5))
        if self.lp_rounds < 1 or self.lp_steps < 1:
            raise UsageError(f"--lp_rounds and --lp_steps must be >= 1, got {self.lp_rounds} and {self.lp_steps}")
        self.ohf = float(g("one_hot_factor", 1.0))
        if not (1.0 / k < self.ohf <= 1.0):
            raise UsageError(f"--one_hot_factor {self.ohf}: must be in (1/k, 1] = ({1.0 / k:.4g}, 1] for k={k} "
                             "groups: the focal group's share must exceed the others' or W is singular")
        self.normalize = bool(g("aioli_normalize_A", False))
        self.diagonal = bool(g("aioli_diagonal", False))
        self.ema = g("ema")
        if self.ema is not None and not (0.0 <= float(self.ema) < 1.0):
            raise UsageError(f"--ema {self.ema}: must be in [0, 1) (the weight on the history of A)")
        self.ema = None if self.ema is None else float(self.ema)
        lp_eval = g("lp_eval_samples")
        if lp_eval is not None and int(lp_eval) < 1:
            raise UsageError(f"--lp_eval_samples must be >= 1, got {lp_eval}")
        self.eval_max_windows = None if lp_eval is None else int(lp_eval)

        # prior phase
        prior, prior_steps, self.graph_path = g("aioli_prior"), g("prior_steps"), g("graph_path")
        if prior is not None and prior_steps is None:
            raise UsageError("--aioli_prior needs --prior_steps (how many steps to train on the prior)")
        self.prior_steps = int(prior_steps or 0)
        if self.prior_steps < 0 or self.prior_steps >= T:
            raise UsageError(f"--prior_steps {self.prior_steps}: must be in [0, total steps = {T})")
        self.prior = None if prior is None else normalize_weights(prior, k, "--aioli_prior")
        if self.prior is not None and np.any(self.prior == 0):
            warnings.warn("--aioli_prior has zero entries: Aioli's multiplicative updates keep them at zero")
        self.weights = np.full(k, 1.0 / k) if self.prior is None else self.prior.copy()
        self.skillit = None
        if self.graph_path is not None:
            self.skillit = self._skillit_init(args)
            self.weights = self.skillit.weights.copy()

        # round geometry
        self.delta = self.lp_rounds * self.lp_steps * k
        rest = T - self.prior_steps
        if self.static:
            self.update_steps = rest  # one round over the rest of the run; --update_steps is ignored
        self.update_steps = int(self.update_steps)
        if self.update_steps < 1:
            raise UsageError(f"--update_steps must be >= 1, got {self.update_steps}")
        if self.delta >= self.update_steps and not self.static:
            raise UsageError(f"--aioli: the probes do not fit in a round: --lp_rounds {self.lp_rounds} x --lp_steps "
                             f"{self.lp_steps} x {k} groups = {self.delta} steps >= --update_steps {self.update_steps}; "
                             "lower --lp_rounds/--lp_steps or raise --update_steps")
        if self.delta >= min(self.update_steps, rest):
            raise UsageError(f"--aioli: LearnParams needs {self.delta} steps (--lp_rounds x --lp_steps x k) plus one on "
                             f"the learned mixture, but only {rest} steps follow the prior phase; lengthen --max_steps, "
                             "shorten --prior_steps or the probes")

        # state (everything below is in state_dict)
        self.base: Optional[np.ndarray] = None  # p before the first update (EMA's base)
        self.abar: Optional[np.ndarray] = None
        self.cur_round, self.done_round, self.probes_done = -1, -1, 0
        self.D: Optional[np.ndarray] = None  # summed drops of the LearnParams in progress
        self.L0: Optional[np.ndarray] = None
        self.L_prev: Optional[np.ndarray] = None
        self.rounds: list = []
        self._orders: dict = {}  # cache of probe_order(seed, r); derived, not state
        self._step = 0

    def _skillit_init(self, args) -> SkillitSchedule:
        g = lambda name, default=None: getattr(args, name, default)  # noqa: E731
        if self.prior is not None:
            raise UsageError("--aioli with --graph_path uses Skill-it during the prior phase; drop --aioli_prior "
                             "(or drop --graph_path to train on the prior)")
        if self.prior_steps < 1:
            raise UsageError("--aioli --graph_path: give --prior_steps N >= 1, the length of the Skill-it phase")
        if g("skillit_eta") is None or g("skillit_update_steps") is None:
            raise UsageError("--aioli --graph_path: --skillit_eta and --skillit_update_steps are required "
                             "(the Skill-it initialisation's step size and round length, e.g. 0.2 and 500)")
        eta, every, window = float(g("skillit_eta")), int(g("skillit_update_steps")), int(g("skillit_window", 3))
        if not math.isfinite(eta) or eta < 0 or every < 1 or window < 1:
            raise UsageError(f"--skillit_eta {eta} must be >= 0, --skillit_update_steps {every} and "
                             f"--skillit_window {window} >= 1")
        graph = load_skillit_graph(self.graph_path, self.groups)
        return SkillitSchedule(graph, eta, every, window, self.prior_steps)

    # -- schedule: pure functions of the step ------------------------------------------------------
    def _round(self, step: int):
        """(round index, round start, round length, does LearnParams) for a step >= prior_steps."""
        r = (step - self.prior_steps) // self.update_steps
        r0 = self.prior_steps + r * self.update_steps
        length = min(self.update_steps, self.total_steps - r0)
        return r, r0, length, self.delta < length

    def _order(self, r: int) -> list:
        if r not in self._orders:
            self._orders[r] = probe_order(self.seed, r, self.k, self.lp_rounds)
        return self._orders[r]

    def wants_eval(self, step: int) -> bool:
        if step < self.prior_steps:
            return self.skillit is not None and self.skillit.wants(step)
        if step >= self.total_steps:
            return False
        _, r0, _, lp = self._round(step)
        off = step - r0
        return lp and off <= self.delta and off % self.lp_steps == 0

    def mixture(self, step: int) -> Mixture:
        self._step = step
        if step < self.prior_steps:
            return Mixture(self.weights.copy())
        r, r0, _, lp = self._round(step)
        off = step - r0
        if lp and off < self.delta:
            focal = self._order(r)[off // self.lp_steps]
            return Mixture(probe_mixture(self.k, focal, self.ohf), exact=True)
        if lp and self.done_round < r:
            raise RuntimeError(f"Aioli: round {r}'s LearnParams evaluations were not all observed by step {step}; "
                               "the loop must call observe_eval whenever wants_eval is True")
        return Mixture(self.weights.copy())

    # -- observations ------------------------------------------------------------------------------
    def observe_eval(self, step: int, losses: np.ndarray) -> None:
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
        if losses.size != self.k or not np.all(np.isfinite(losses)):
            raise RuntimeError(f"Aioli: expected {self.k} finite validation losses at step {step}, got {losses.tolist()}")
        if step < self.prior_steps:
            if self.skillit is not None and self.skillit.observe(step, losses):
                self.weights = self.skillit.weights.copy()
            return
        if not self.wants_eval(step):
            return  # an evaluation the method did not ask for (e.g. periodic): not used
        r, r0, _, _ = self._round(step)
        i = (step - r0) // self.lp_steps  # probes completed once this evaluation is in
        if i == 0:
            if self.done_round < r:
                self.cur_round, self.probes_done = r, 0
                self.D = np.zeros((self.k, self.k))
                self.L0, self.L_prev = losses.copy(), losses.copy()
            return
        if self.cur_round != r or self.probes_done < i - 1:
            raise RuntimeError(f"Aioli: missing LearnParams evaluation before step {step} (round {r}); the loop "
                               "must call observe_eval whenever wants_eval is True")
        if self.probes_done >= i:
            return  # the same evaluation delivered twice
        focal = self._order(r)[i - 1]
        self.D[:, focal] += self.L_prev - losses
        self.L_prev, self.probes_done = losses.copy(), i
        if i == self.lp_rounds * self.k:
            self._finish_round(r, step)

    def _finish_round(self, r: int, step: int) -> None:
        D = self.D / self.lp_rounds
        A_raw = estimate_A(D, self.ohf, self.diagonal)
        A = normalize_A(A_raw) if self.normalize else A_raw
        if self.base is None:
            self.base = self.weights.copy()
        if self.ema is None:
            used = A
            self.weights = exp_update(self.weights, used.sum(axis=0), self.eta)  # cumulative
        else:
            used = A if self.abar is None else (1.0 - self.ema) * A + self.ema * self.abar
            self.abar = used
            self.weights = exp_update(self.base, used.sum(axis=0), self.eta)  # from the base each round
        self.done_round = r
        self.rounds.append({"round": r, "step": int(step), "L0": self.L0.tolist(), "D": D.tolist(),
                            "A_raw": A_raw.tolist(), "A": used.tolist(), "weights": self.weights.tolist(),
                            "probe_order": self._order(r)})
        self.D = self.L_prev = self.L0 = None

    # -- records -----------------------------------------------------------------------------------
    def log_values(self) -> dict:
        s = self._step
        if s < self.prior_steps:
            return {"aioli_phase": "skillit_init" if self.skillit is not None else "prior"}
        r, r0, _, lp = self._round(s)
        if lp and s - r0 < self.delta:
            return {"aioli_phase": "probe", "aioli_round": r,
                    "aioli_probe": self.groups[self._order(r)[(s - r0) // self.lp_steps]]}
        return {"aioli_phase": "train", "aioli_round": r}

    def artifacts(self) -> dict:
        settings = {"eta": self.eta, "update_steps": self.update_steps, "lp_rounds": self.lp_rounds,
                    "lp_steps": self.lp_steps, "one_hot_factor": self.ohf, "normalize_A": self.normalize,
                    "ema": self.ema, "diagonal": self.diagonal, "static": self.static,
                    "prior": None if self.prior is None else self.prior.tolist(), "prior_steps": self.prior_steps,
                    "graph_path": self.graph_path, "lp_eval_samples": self.eval_max_windows,
                    "selection_seed": self.seed, "probe_steps_per_round": self.delta, "total_steps": self.total_steps,
                    "probe_order_rng": "np.random.default_rng(SeedSequence([0x41696F6C, seed, round]))"}
        out = {"groups": self.groups, "settings": settings,
               "initial_weights": None if self.base is None else self.base.tolist(), "rounds": self.rounds}
        if self.skillit is not None:
            out["skillit_init"] = {"graph": self.skillit.graph.tolist(), "updates": self.skillit.updates}
        return {"aioli.json": out}

    def state_dict(self) -> dict:
        arr = lambda a: None if a is None else a.tolist()  # noqa: E731
        return {"groups": self.groups, "weights": self.weights.tolist(), "base": arr(self.base),
                "abar": arr(self.abar), "cur_round": self.cur_round, "done_round": self.done_round,
                "probes_done": self.probes_done, "D": arr(self.D), "L0": arr(self.L0), "L_prev": arr(self.L_prev),
                "rounds": self.rounds, "step": self._step,
                "skillit": None if self.skillit is None else self.skillit.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if list(state["groups"]) != self.groups:
            raise UsageError(f"Aioli state is for groups {state['groups']}, the run has {self.groups}")
        arr = lambda a: None if a is None else np.asarray(a, dtype=np.float64)  # noqa: E731
        self.weights = arr(state["weights"])
        self.base, self.abar = arr(state["base"]), arr(state["abar"])
        self.cur_round, self.done_round = int(state["cur_round"]), int(state["done_round"])
        self.probes_done = int(state["probes_done"])
        self.D, self.L0, self.L_prev = arr(state["D"]), arr(state["L0"]), arr(state["L_prev"])
        self.rounds, self._step = list(state["rounds"]), int(state.get("step", 0))
        if (state.get("skillit") is None) != (self.skillit is None):
            raise UsageError("Aioli state and flags disagree about --graph_path (Skill-it initialisation)")
        if self.skillit is not None:
            self.skillit.load_state_dict(state["skillit"])

"""Aioli (Chen et al., arXiv 2411.05735) as a per-step state machine, with a more robust estimator.

- Timeline: a prior phase (--aioli_prior / Skill-it with --graph_path), then rounds of --update_steps
  steps from max(--prior_steps, --warmup_steps); each round starts with LearnParams (lp_rounds x k
  probes of lp_steps steps on smoothed one-hot mixtures, each followed by a validation evaluation).
- Update: A fitted to the probes' loss drops, score = objective-weighted column sums of A, centred and
  noise-gated, p <- p * exp(eta * score) (with --ema: an average over rounds times the base).
- Resume: the mixture and `wants_eval` are pure functions of the step and `state_dict()`.
- Artefact `aioli.json` (every round's L0, D, W, A, scores, weights). The full reference, every
  choice and what it was measured to do: docs/aioli.md.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from errors import UsageError
from methods.base import MixingMethod, Mixture, RoundOptions, normalize_weights
from methods.skillit import SkillitGraphOptions, SkillitSchedule, load_skillit_graph
from options import option

ORDER_TAG = 0x41696F6C  # "Aiol": keeps probe orders independent of other streams seeded by (seed, round)
OBJECTIVES = ("loss", "perplexity")
BASES = ("prior", "uniform")
PROBE_ORDERS = ("random", "antithetic")
# schedulers whose --warmup_steps ramp the learning rate (torch's cosine and constant do not)
_NO_WARMUP_SCHEDULERS = ("cosine", "constant")


@dataclass(frozen=True)
class AioliOptions(SkillitGraphOptions, RoundOptions):
    """Aioli's flags; --update_steps and --eta are required unless --aioli_static."""

    lp_rounds: int = option(1, "random orders of the k probes per LearnParams")
    lp_steps: int = option(5, "training steps per probe mixture")
    one_hot_factor: float = option(1.0, "focal group's share in a probe mixture; the others split the rest evenly")
    aioli_normalize_A: bool = option(False, "shift A by its minimum when negative, then divide by its sum")
    ema: Optional[float] = option(None, "EMA weight on the history of A")
    aioli_diagonal: bool = option(False, "keep only A_ii = D_ii / one_hot_factor")
    aioli_static: bool = option(False, "one LearnParams at the start, then a fixed mixture (the paper's "
                                "'Aioli static')")
    aioli_prior: Optional[tuple[float, ...]] = option(
        None, "restricted setting: static mixture for the first --prior_steps steps")
    prior_steps: Optional[int] = option(None, "length of the prior phase in steps")
    lp_eval_samples: Optional[int] = option(None, "windows per group in the probe evaluations (default: all, as "
                                            "in the paper)")
    aioli_objective: str = option(
        "perplexity", "what the update descends: loss = the sum of group losses (the paper's); perplexity = the "
        "mean of group perplexities, the reported metric (each group's row of A weighted by its perplexity)",
        choices=OBJECTIVES)
    aioli_trend: int = option(
        1, "degree of the polynomial in probe position fitted with A to the probes' loss drops, so that a drift "
        "over the LearnParams is not credited to the group probed then (0: the paper's un-mixing)", choices=(0, 1, 2))
    aioli_noise_z: float = option(
        1.0, "noise gate: a group's centred score moves p by max(0, 1 - (z/t)^2) of itself, t = the score / its "
        "standard error from the fit's residuals (0 = off, the paper's)")
    aioli_probe_order: str = option(
        "antithetic", "antithetic: one order per round, run forwards and backwards in the Thue-Morse pattern "
        "(+ - - + ...), so a linear drift of the loss drops over the LearnParams falls on every group alike; "
        "random: a new order per repeat (the paper's)", choices=PROBE_ORDERS)
    aioli_base: str = option(
        "uniform", "what the first update multiplies (with --ema, every update): uniform (as the paper's code "
        "did) or the prior / Skill-it mixture", choices=BASES)
    aioli_probe_warmup: bool = option(False, "allow LearnParams inside the learning-rate warmup (the paper's "
                                      "behaviour); by default the first round starts after --warmup_steps")
    aioli_settle_steps: Optional[int] = option(
        None, "steps on the current mixture between the end of the learning-rate warmup and the first LearnParams, "
        "so that the first probe does not take the steep fall of the loss right after the warmup (default: "
        "--warmup_steps / 8, rounded up; 0 = start at the warmup's end)")
    skillit_eta: Optional[float] = option(None, "eta of the Skill-it initialisation")
    skillit_update_steps: Optional[int] = option(None, "round length of the Skill-it initialisation")


# -- the pure pieces (tested by hand computations) -------------------------------------------------
def probe_mixture(k: int, focal: int, ohf: float) -> np.ndarray:
    """Smoothed one-hot mixture: `ohf` on `focal`, (1 - ohf)/(k - 1) on every other group."""
    q = np.full(k, (1.0 - ohf) / (k - 1))
    q[focal] = ohf
    return q


def probe_matrix(k: int, ohf: float) -> np.ndarray:
    """W with row j = probe_mixture(k, j, ohf) (the nominal probe mixtures)."""
    return np.stack([probe_mixture(k, j, ohf) for j in range(k)])


def probe_counts(k: int, focal: int, ohf: float, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Rows per group of one probe of `rows` = lp_steps x batch_size training rows: ohf x rows, rounded
    half up, for the focal group, the rest split evenly over the others, with the remainder's extra
    rows going to others chosen by `rng` (no bias to low indices). Each count / rows is a share the batch rule
    realises exactly over the probe's batches (data/composition.py), so the probe trains on exactly
    the mixture that A is un-mixed with."""
    counts = np.zeros(k, dtype=np.int64)
    counts[focal] = min(rows, math.floor(ohf * rows + 0.5))  # half up: the focal share must stay the largest
    others = np.array([g for g in range(k) if g != focal])
    each, extra = divmod(rows - int(counts[focal]), k - 1)
    counts[others] = each
    counts[rng.choice(others, size=extra, replace=False)] += 1
    return counts


def probe_order(seed: int, round_index: int, k: int, lp_rounds: int, antithetic: bool = False) -> list:
    """The probe order of a round: lp_rounds permutations of range(k), concatenated.

    random (the paper's): an independent permutation per repeat. antithetic: one permutation, run
    forwards or backwards in the Thue-Morse pattern (repeat m backwards when m has an odd number of
    1 bits: +, -, -, +, -, +, +, - ...), so that a linear trend of the drops over the LearnParams
    (the loss curve flattening, the learning rate moving) falls on every group equally in each pair
    of repeats, and for k = 2 a quadratic one too in each four. The antithetic permutation is rotated so
    that group (seed + round) mod k leads: whatever the first probe of a LearnParams picks up beyond the
    trend falls on every group equally often over consecutive seeds and rounds (six seeds of a random
    permutation once all led with the same group for k = 2)."""
    rng = np.random.default_rng(np.random.SeedSequence([ORDER_TAG, int(seed) % 2**64, int(round_index)]))
    if antithetic:
        perm = [int(j) for j in rng.permutation(k)]
        lead = perm.index((int(seed) + int(round_index)) % k)
        perm = perm[lead:] + perm[:lead]
        return [j for rep in range(lp_rounds) for j in (perm[::-1] if bin(rep).count("1") % 2 else perm)]
    return [int(j) for _ in range(lp_rounds) for j in rng.permutation(k)]


def estimate_A(D: np.ndarray, W: np.ndarray, diagonal: bool = False) -> np.ndarray:
    """Un-mix the loss drops: D = A W^T (law: drop_i(q) = sum_l A_il q_l; row j of W = the mixture of
    probe j), so A = D W^-T (solved). diagonal: A_ii = D_ii / W_jj (the focal share)."""
    D, W = np.asarray(D, dtype=np.float64), np.asarray(W, dtype=np.float64)
    if diagonal:
        return np.diag(np.diag(D) / np.diag(W))
    return np.linalg.solve(W, D.T).T  # A^T = W^-1 D^T


def normalize_A(A: np.ndarray) -> np.ndarray:
    """Shift by the minimum when it is negative, then divide by the sum (a zero sum stays zero)."""
    A = np.array(A, dtype=np.float64, copy=True)
    low = A.min()
    if low < 0:
        A -= low
    total = A.sum()
    return A / total if total > 0 else A


def objective_weights(losses: np.ndarray, objective: str) -> np.ndarray:
    """Row weights of A in the score: the gradient of the objective with respect to the group losses,
    scaled to mean 1. loss: the sum of group losses (the paper's), all ones; perplexity: the mean of
    group perplexities, d/dL_i exp(L_i) = exp(L_i), so a group counts in proportion to its perplexity."""
    losses = np.asarray(losses, dtype=np.float64)
    if objective == "loss":
        return np.ones_like(losses)
    ppl = np.exp(losses - losses.max())  # the scale cancels below; shifting avoids overflow
    return ppl / ppl.mean()


def fit_drops(drops: np.ndarray, mixtures: np.ndarray, trend: int):
    """Least squares per evaluated group over the probes of one LearnParams.

    drops: (n, k), row m = the loss drops of every group over probe m (in probe order); mixtures:
    (n, k), row m = the mixture probe m trained on. Model: drops[m, i] = sum_l A_il mixtures[m, l] +
    sum_{d=1..trend} b_id u_m^d, u = the probe's position scaled to [-1, 1]: the polynomial absorbs the
    part of the drops that follows the position in the order (the loss curve flattening, the learning
    rate moving) instead of crediting it to whichever group was probed there. With trend 0 and every
    mixture probed equally often, A = mean drops un-mixed = D W^-T (the paper's estimator).

    Returns (A (k, k), M (k, k) = the A-block of (X^T X)^-1, sigma2 (k,) residual variance per
    evaluated group, or None when the fit has no residual degrees of freedom).
    """
    drops, mixtures = np.asarray(drops, np.float64), np.asarray(mixtures, np.float64)
    n, k = drops.shape
    u = np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(n)
    X = np.column_stack([mixtures] + [u ** d for d in range(1, trend + 1)])
    beta = np.linalg.lstsq(X, drops, rcond=None)[0]
    M = np.linalg.pinv(X.T @ X)[:k, :k]
    dof = n - np.linalg.matrix_rank(X)
    sigma2 = ((drops - X @ beta) ** 2).sum(axis=0) / dof if dof > 0 else None
    return beta[:k].T, M, sigma2


def score_t(score: np.ndarray, obj: np.ndarray, M: np.ndarray, sigma2) -> np.ndarray:
    """t statistic of each group's centred score s - mean(s), s = obj @ A, A from fit_drops (nan where the
    fit has no residual degrees of freedom).

    Only differences between groups move p on the simplex, so the test is on the centred score: its
    variance is (sum_i obj_i^2 sigma2_i) * (C M C)_ll with C the centring matrix (rows of A are estimated
    independently from one design). Recorded per round (`score_t` in aioli.json): averaged over rounds
    and seeds it says whether the probes see the mixture effect at all.
    """
    k = len(score)
    if sigma2 is None:
        return np.full(k, np.nan)
    C = np.eye(k) - 1.0 / k
    var = float(np.sum(np.asarray(obj) ** 2 * sigma2)) * np.diag(C @ M @ C)
    centred = score - score.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        t = centred / np.sqrt(np.maximum(var, 0.0))  # an exact fit (var 0): +-inf, or 0/0 where the score is 0
    return np.where(centred == 0, 0.0, t)


def noise_shrinkage(t: np.ndarray, z: float) -> np.ndarray:
    """Per-group factor in [0, 1] for the centred score, from its t statistic (score_t): max(0, 1 - (z /
    t)^2) (positive-part James-Stein): 0 when |t| <= z (a signal within its own noise does not move p),
    close to 1 when it stands well clear. z = 0, or no residual degrees of freedom (t nan), gives all
    ones (the paper's update)."""
    t = np.asarray(t, dtype=np.float64)
    if z <= 0 or np.isnan(t).any():
        return np.ones(len(t))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(1.0 - z * z / t ** 2, 0.0, 1.0)


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
    Options = AioliOptions

    def __init__(self, groups: list, options: AioliOptions = None, total_steps: int = 0, run=None,
                 initial_weights: Optional[np.ndarray] = None):
        # initial_weights is ignored: Aioli starts from uniform or from --aioli_prior.
        super().__init__(groups, options, total_steps, run)
        o = self.options
        k, T = self.k, self.total_steps
        if k < 2:
            raise UsageError(f"--aioli: needs at least 2 groups in --slice_list, got {k}")
        self.static = o.aioli_static
        if o.eta is None:
            raise UsageError("--aioli: --eta is required (exponentiated-gradient step size; the paper uses 0.1-1)")
        self.eta = float(o.eta)
        if not math.isfinite(self.eta) or self.eta < 0:
            raise UsageError(f"--eta must be a finite number >= 0, got {self.eta}")
        self.update_steps = o.update_steps
        if self.update_steps is None and not self.static:
            raise UsageError("--aioli: --update_steps is required (round length in steps; the paper uses 250 "
                             "of 5000), or pass --aioli_static for one LearnParams at the start")
        self.lp_rounds, self.lp_steps = int(o.lp_rounds), int(o.lp_steps)
        if self.lp_rounds < 1 or self.lp_steps < 1:
            raise UsageError(f"--lp_rounds and --lp_steps must be >= 1, got {self.lp_rounds} and {self.lp_steps}")
        self.ohf = float(o.one_hot_factor)
        if not (1.0 / k < self.ohf <= 1.0):
            raise UsageError(f"--one_hot_factor {self.ohf}: must be in (1/k, 1] = ({1.0 / k:.4g}, 1] for k={k} "
                             "groups: the focal group's share must exceed the others' or W is singular")
        self.batch_size = self.run.batch_size  # rows per step: probes are realised exactly over lp_steps batches
        self.normalize = o.aioli_normalize_A
        self.objective = o.aioli_objective
        if self.objective not in OBJECTIVES:
            raise UsageError(f"--aioli_objective {self.objective}: choose one of {', '.join(OBJECTIVES)}")
        self.noise_z = float(o.aioli_noise_z)
        if not math.isfinite(self.noise_z) or self.noise_z < 0:
            raise UsageError(f"--aioli_noise_z must be a finite number >= 0 (0 = no noise gate), got {self.noise_z}")
        self.antithetic = o.aioli_probe_order == "antithetic"
        self.trend = int(o.aioli_trend)
        if self.trend not in (0, 1, 2):
            raise UsageError(f"--aioli_trend {self.trend}: 0 (none, the paper's), 1 (linear) or 2 (quadratic)")
        self.base_rule = o.aioli_base
        if self.base_rule not in BASES:
            raise UsageError(f"--aioli_base {self.base_rule}: choose one of {', '.join(BASES)}")
        self.diagonal = o.aioli_diagonal
        self.ema = o.ema
        if self.ema is not None and not (0.0 <= float(self.ema) < 1.0):
            raise UsageError(f"--ema {self.ema}: must be in [0, 1) (the weight on the history of A)")
        self.ema = None if self.ema is None else float(self.ema)
        lp_eval = o.lp_eval_samples
        if lp_eval is not None and int(lp_eval) < 1:
            raise UsageError(f"--lp_eval_samples must be >= 1, got {lp_eval}")
        self.eval_max_windows = None if lp_eval is None else int(lp_eval)

        # prior phase
        prior, prior_steps, self.graph_path = o.aioli_prior, o.prior_steps, o.graph_path
        if prior is not None and prior_steps is None:
            raise UsageError("--aioli_prior needs --prior_steps (how many steps to train on the prior)")
        self.prior_steps = int(prior_steps or 0)
        if self.prior_steps < 0 or self.prior_steps >= T:
            raise UsageError(f"--prior_steps {self.prior_steps}: must be in [0, total steps = {T}) (--max_steps)")
        self.prior = None if prior is None else normalize_weights(prior, k, "--aioli_prior")
        # Probes inside the learning-rate warmup measure the learning rate at their position in the
        # probe order, not the data: by default the first LearnParams waits for the warmup's end.
        # Right after the warmup the loss still falls several times faster than a few steps later: the
        # first probe's drops were 1.7-2.5x the LearnParams' mean and always credited to the group
        # probed first, which a linear trend cannot absorb. A few settling steps on the current mixture
        # skip that transient (docs/aioli.md).
        warmup = 0 if self.run.lr_scheduler in _NO_WARMUP_SCHEDULERS else int(self.run.warmup_steps or 0)
        waited = 0 if o.aioli_probe_warmup else max(0, warmup)  # warmup steps the first round waits for
        settle = o.aioli_settle_steps
        if settle is not None and settle < 0:
            raise UsageError(f"--aioli_settle_steps must be >= 0, got {settle}")
        self.settle = 0 if waited == 0 else (math.ceil(waited / 8) if settle is None else settle)
        self.start = max(self.prior_steps, waited + self.settle)  # step of the first round
        if self.prior is not None and np.any(self.prior == 0) and self.base_rule == "prior":
            warnings.warn("--aioli_prior has zero entries and --aioli_base prior: Aioli's multiplicative updates "
                          "keep them at zero")
        self.weights = np.full(k, 1.0 / k) if self.prior is None else self.prior.copy()
        self.skillit = None
        if self.graph_path is not None:
            self.skillit = self._skillit_init(o)
            self.weights = self.skillit.weights.copy()

        # round geometry
        self.delta = self.lp_rounds * self.lp_steps * k
        rest = T - self.start
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
            raise UsageError(f"--aioli: LearnParams needs {self.delta} steps (--lp_rounds x --lp_steps x k) plus "
                             f"one on the learned mixture after step {self.start} (the end of --prior_steps "
                             f"{self.prior_steps}, or of --warmup_steps {warmup} plus --aioli_settle_steps "
                             f"{self.settle}), but the run has {T} steps; lengthen --max_steps, shorten --prior_steps, "
                             "--warmup_steps or the probes (or pass --aioli_probe_warmup)")
        if self.batch_size is not None:
            self._check_probe_counts(k)

        # state (everything below is in state_dict)
        self.base: Optional[np.ndarray] = None  # what the first update multiplies (EMA: every update)
        self.abar: Optional[np.ndarray] = None  # EMA of A (recorded for analysis)
        self.gbar: Optional[np.ndarray] = None  # EMA of the (noise-shrunk, centred) scores that move p
        self.cur_round, self.done_round, self.probes_done = -1, -1, 0
        self.D: Optional[np.ndarray] = None  # (lp_rounds * k, k): drops of every probe so far, in probe order
        self.L0: Optional[np.ndarray] = None
        self.L_prev: Optional[np.ndarray] = None
        self.rounds: list = []
        self._orders: dict = {}  # cache of probe_order(seed, r); derived, not state
        self._probes: dict = {}  # cache of the probe mixtures of round r; derived, not state
        self._step = 0

    def _skillit_init(self, o: AioliOptions) -> SkillitSchedule:
        if self.prior is not None:
            raise UsageError("--aioli with --graph_path uses Skill-it during the prior phase; drop --aioli_prior "
                             "(or drop --graph_path to train on the prior)")
        if self.prior_steps < 1:
            raise UsageError("--aioli --graph_path: give --prior_steps N >= 1, the length of the Skill-it phase")
        if o.skillit_eta is None or o.skillit_update_steps is None:
            raise UsageError("--aioli --graph_path: --skillit_eta and --skillit_update_steps are required "
                             "(the Skill-it initialisation's step size and round length, e.g. 0.2 and 500)")
        eta, every, window = float(o.skillit_eta), int(o.skillit_update_steps), int(o.skillit_window)
        if not math.isfinite(eta) or eta < 0 or every < 1 or window < 1:
            raise UsageError(f"--skillit_eta {eta} must be >= 0, --skillit_update_steps {every} and "
                             f"--skillit_window {window} >= 1")
        graph = load_skillit_graph(self.graph_path, self.groups)
        return SkillitSchedule(graph, eta, every, window, self.prior_steps)

    # -- schedule: pure functions of the step ------------------------------------------------------
    def _round(self, step: int):
        """(round index, round start, round length, does LearnParams) for a step >= start."""
        r = (step - self.start) // self.update_steps
        r0 = self.start + r * self.update_steps
        length = min(self.update_steps, self.total_steps - r0)
        return r, r0, length, self.delta < length

    def _order(self, r: int) -> list:
        if r not in self._orders:
            self._orders[r] = probe_order(self.seed, r, self.k, self.lp_rounds, self.antithetic)
        return self._orders[r]

    def _check_probe_counts(self, k: int) -> None:
        rows = self.lp_steps * int(self.batch_size)
        counts = probe_counts(k, 0, self.ohf, rows, np.random.default_rng(0))  # the same for any focal group
        if counts[0] <= counts[1:].max():
            raise UsageError(f"--one_hot_factor {self.ohf}: a probe of --lp_steps {self.lp_steps} x batch "
                             f"{self.batch_size} = {rows} rows gives the focal group {counts[0]}, no more than "
                             "another group gets; raise --one_hot_factor or --lp_steps")

    def probe_mixtures(self, r: int) -> np.ndarray:
        """W of round r: row j = the mixture that probe j trains on. With a known batch size, the
        realised shares of probe_counts (exact over lp_steps batches); else the nominal q_j."""
        if r not in self._probes:
            if self.batch_size is None:
                self._probes[r] = probe_matrix(self.k, self.ohf)
            else:
                rows = self.lp_steps * int(self.batch_size)
                W = np.zeros((self.k, self.k))
                for j in range(self.k):
                    rng = np.random.default_rng(np.random.SeedSequence([ORDER_TAG, self.seed % 2**64, r, 1, j]))
                    W[j] = probe_counts(self.k, j, self.ohf, rows, rng) / rows
                self._probes[r] = W
        return self._probes[r]

    def wants_eval(self, step: int) -> bool:
        if step < self.start:
            return self.skillit is not None and step < self.prior_steps and self.skillit.wants(step)
        if step >= self.total_steps:
            return False
        _, r0, _, lp = self._round(step)
        off = step - r0
        return lp and off <= self.delta and off % self.lp_steps == 0

    def mixture(self, step: int) -> Mixture:
        self._step = step
        if step < self.start:
            return Mixture(self.weights.copy())
        r, r0, _, lp = self._round(step)
        off = step - r0
        if lp and off < self.delta:
            focal = self._order(r)[off // self.lp_steps]
            return Mixture(self.probe_mixtures(r)[focal].copy(), exact=True)
        if lp and self.done_round < r:
            raise RuntimeError(f"Aioli: round {r}'s LearnParams evaluations were not all observed by step {step}; "
                               "the loop must call observe_eval whenever wants_eval is True")
        return Mixture(self.weights.copy())

    # -- observations ------------------------------------------------------------------------------
    def observe_eval(self, step: int, losses: np.ndarray) -> None:
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
        if losses.size != self.k or not np.all(np.isfinite(losses)):
            raise RuntimeError(f"Aioli: expected {self.k} finite validation losses at step {step}, got {losses.tolist()}")
        if step < self.start:
            if self.skillit is not None and step < self.prior_steps and self.skillit.observe(step, losses):
                self.weights = self.skillit.weights.copy()
            return
        if not self.wants_eval(step):
            return  # an evaluation the method did not ask for (e.g. periodic): not used
        r, r0, _, _ = self._round(step)
        i = (step - r0) // self.lp_steps  # probes completed once this evaluation is in
        if i == 0:
            if self.done_round < r:
                self.cur_round, self.probes_done = r, 0
                self.D = np.zeros((self.lp_rounds * self.k, self.k))
                self.L0, self.L_prev = losses.copy(), losses.copy()
            return
        if self.cur_round != r or self.probes_done < i - 1:
            raise RuntimeError(f"Aioli: missing LearnParams evaluation before step {step} (round {r}); the loop "
                               "must call observe_eval whenever wants_eval is True")
        if self.probes_done >= i:
            return  # the same evaluation delivered twice
        self.D[i - 1] = self.L_prev - losses
        self.L_prev, self.probes_done = losses.copy(), i
        if i == self.lp_rounds * self.k:
            self._finish_round(r, step)

    def _finish_round(self, r: int, step: int) -> None:
        W, order = self.probe_mixtures(r), self._order(r)
        D = np.zeros((self.k, self.k))  # D[:, j]: mean drops of the probes on mixture j (the record)
        for m, j in enumerate(order):
            D[:, j] += self.D[m] / self.lp_rounds
        A_fit, M, sigma2 = fit_drops(self.D, W[order], self.trend)
        # --aioli_diagonal keeps the paper's A_ii = D_ii / (focal share), from the mean drops
        A_raw = np.diag(np.diag(D) / np.diag(W)) if self.diagonal else A_fit
        A = normalize_A(A_raw) if self.normalize else A_raw
        self.abar = A if self.ema is None or self.abar is None else (1.0 - self.ema) * A + self.ema * self.abar
        # The score of group l: how much one unit of p_l lowers the objective, from this round's A.
        # Centred (only differences between groups move p on the simplex), then shrunk towards 0
        # where it is within the fit's own noise (noise_shrinkage; normalising A rescales and shifts
        # every score alike, so the test is done on the fitted A).
        obj = objective_weights(self.L_prev, self.objective)
        score = obj @ A
        t = score_t(obj @ A_fit, obj, M, sigma2)
        shrink = noise_shrinkage(t, self.noise_z)
        g = shrink * (score - score.mean())
        if self.base is None:
            self.base = np.full(self.k, 1.0 / self.k) if self.base_rule == "uniform" else self.weights.copy()
            if self.ema is None:
                self.weights = self.base.copy()  # the cumulative update starts from the base too
        if self.ema is None:
            self.weights = exp_update(self.weights, g, self.eta)  # cumulative
        else:
            self.gbar = g if self.gbar is None else (1.0 - self.ema) * g + self.ema * self.gbar
            self.weights = exp_update(self.base, self.gbar, self.eta)  # from the base each round
        self.done_round = r
        self.rounds.append({"round": r, "step": int(step), "L0": self.L0.tolist(), "L_end": self.L_prev.tolist(),
                            "D": D.tolist(), "W": W.tolist(), "A_raw": A_raw.tolist(), "A": self.abar.tolist(),
                            "objective_weights": obj.tolist(), "score": score.tolist(),
                            # JSON has no nan / inf (no residual dof / an exact fit): null
                            "score_t": [float(x) if np.isfinite(x) else None for x in t],
                            "shrinkage": shrink.tolist(),
                            "step_scores": (g if self.ema is None else self.gbar).tolist(),
                            "weights": self.weights.tolist(), "probe_order": self._order(r),
                            "probe_drops": self.D.tolist()})
        self.D = self.L_prev = self.L0 = None

    # -- records -----------------------------------------------------------------------------------
    def log_values(self) -> dict:
        s = self._step
        if s < self.start:
            if s < self.prior_steps:
                return {"aioli_phase": "skillit_init" if self.skillit is not None else "prior"}
            return {"aioli_phase": "warmup"}
        r, r0, _, lp = self._round(s)
        if lp and s - r0 < self.delta:
            return {"aioli_phase": "probe", "aioli_round": r,
                    "aioli_probe": self.groups[self._order(r)[(s - r0) // self.lp_steps]]}
        return {"aioli_phase": "train", "aioli_round": r}

    def tables(self) -> dict:
        """A of every round in long form: one row per (round, evaluated group, trained group)."""
        rows = [[r["round"], r["step"], self.groups[i], self.groups[j], float(a)]
                for r in self.rounds if r.get("A") is not None
                for i, row in enumerate(r["A"]) for j, a in enumerate(row)]
        return {"aioli_A": {"columns": ["round", "step", "evaluated", "trained", "A"], "rows": rows}}

    def artifacts(self) -> dict:
        settings = {"eta": self.eta, "update_steps": self.update_steps, "lp_rounds": self.lp_rounds,
                    "lp_steps": self.lp_steps, "one_hot_factor": self.ohf, "normalize_A": self.normalize,
                    "ema": self.ema, "diagonal": self.diagonal, "static": self.static,
                    "prior": None if self.prior is None else self.prior.tolist(), "prior_steps": self.prior_steps,
                    "graph_path": self.graph_path, "lp_eval_samples": self.eval_max_windows,
                    "selection_seed": self.seed, "probe_steps_per_round": self.delta, "total_steps": self.total_steps,
                    "objective": self.objective, "noise_z": self.noise_z, "base": self.base_rule,
                    "probe_order": "antithetic" if self.antithetic else "random", "first_round_step": self.start,
                    "settle_steps": self.settle,
                    "batch_size": self.batch_size,
                    "probe_order_rng": "np.random.default_rng(SeedSequence([0x41696F6C, seed, round]))"}
        out = {"groups": self.groups, "settings": settings,
               "initial_weights": None if self.base is None else self.base.tolist(), "rounds": self.rounds}
        if self.skillit is not None:
            out["skillit_init"] = {"graph": self.skillit.graph.tolist(), "updates": self.skillit.updates}
        return {"aioli.json": out}

    def state_dict(self) -> dict:
        arr = lambda a: None if a is None else a.tolist()  # noqa: E731
        return {"groups": self.groups, "weights": self.weights.tolist(), "base": arr(self.base),
                "abar": arr(self.abar), "gbar": arr(self.gbar), "cur_round": self.cur_round, "done_round": self.done_round,
                "probes_done": self.probes_done, "D": arr(self.D), "L0": arr(self.L0), "L_prev": arr(self.L_prev),
                "rounds": self.rounds, "step": self._step,
                "skillit": None if self.skillit is None else self.skillit.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if list(state["groups"]) != self.groups:
            raise UsageError(f"Aioli state is for groups {state['groups']}, the run has {self.groups}")
        arr = lambda a: None if a is None else np.asarray(a, dtype=np.float64)  # noqa: E731
        self.weights = arr(state["weights"])
        self.base, self.abar, self.gbar = arr(state["base"]), arr(state["abar"]), arr(state.get("gbar"))
        self.cur_round, self.done_round = int(state["cur_round"]), int(state["done_round"])
        self.probes_done = int(state["probes_done"])
        self.D, self.L0, self.L_prev = arr(state["D"]), arr(state["L0"]), arr(state["L_prev"])
        self.rounds, self._step = list(state["rounds"]), int(state.get("step", 0))
        if (state.get("skillit") is None) != (self.skillit is None):
            raise UsageError("Aioli state and flags disagree about --graph_path (Skill-it initialisation)")
        if self.skillit is not None:
            self.skillit.load_state_dict(state["skillit"])

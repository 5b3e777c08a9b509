"""The narrow interface between the ONE training loop (`trainer/loop.py`) and a mixing method.

Units: a *step* is one optimizer update. `step` arguments always count the updates already done, so
step 0 is "before the first update" and `total_steps` is "after the last one".

What the loop does at every step s (0 <= s < total_steps):

1. if `method.wants_eval(s)`: evaluate per-group validation loss (using `method.eval_max_windows`
   windows per group, or the run's `--max_eval_samples` when None) and call
   `method.observe_eval(s, losses)`; `losses` is a float64 array ordered like `groups`.
2. `mix = method.mixture(s)`; the sampler draws the batch for this step with `mix.weights`
   (exact largest-remainder composition when `mix.exact` or `--sampling exact`).
3. for each micro-batch: `loss = method.training_loss(model, batch, ctx)`; the loop scales it by the
   micro-batch's share of the batch and calls backward. Then clip, optimizer step, schedule step.
4. `method.after_step(s + 1, ctx)`.

Methods never touch files or the model's internals; the trainer never knows which method it runs.
A method's whole state is `state_dict()` (JSON-serializable), saved in every checkpoint, so that a
run resumed from any step follows the identical trajectory.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from errors import UsageError
from options import from_namespace, option


@dataclass(frozen=True)
class Mixture:
    """The weights for one step's batch (shape (k,), on the simplex, ordered like the run's groups).

    exact: the batch must follow the weights exactly (largest-remainder counts) even when the run
    samples i.i.d. (`--sampling multinomial`), as Aioli's probes require.
    """

    weights: np.ndarray
    exact: bool = False


@dataclass
class StepContext:
    """What a method may use inside `training_loss` / `after_step`.

    token_losses(model, batch) -> (losses, mask): per-token cross-entropy, shape (B, L-1) float32,
        and the 0/1 float mask of the tokens that count (labels != -100); runs under the run's
        autocast. `batch` is a dict with `input_ids` (B, L) int64, `labels` (B, L) int64 (-100 =
        ignored), `group_ids` (B,) int64 (index into `groups`), on the run's device.
    val_batch(n, step) -> batch: n validation rows drawn stratified over groups by a generator seeded
        from (seed, step) (DoGE's target).
    services: named helpers the entry point provides to methods that need them (for example
        "load_model": path -> a frozen model on the run's device, for DoReMi's reference model).
    lr: the learning rate of the update being computed (DoGE scales its scores by it).
    sum_over_ranks(array) -> array: the element-wise sum over the ranks of a torchrun job (the array
        itself in one process; a numpy array, or a tensor summed on its device). Each rank trains its
        own rows of the global batch, so a statistic that a method gathers from the rows it trains
        must be summed before it decides anything: every rank must decide the same.

    `training_loss` normally returns a loss tensor that the loop backpropagates (scaled by the
    micro-batch's share of the batch's tokens). A method that writes parameter gradients itself
    (DoGE: a weighted sum of per-group gradients) returns a tensor WITHOUT grad (e.g. the detached
    loss, for logging); the loop then skips backward and uses the `.grad` fields as they are.
    """

    step: int
    total_steps: int
    groups: list
    micro_batch_index: int = 0
    num_micro_batches: int = 1
    token_losses: Optional[Callable] = None
    val_batch: Optional[Callable] = None
    services: dict = field(default_factory=dict)
    lr: float = 0.0
    sum_over_ranks: Callable = lambda array: array


@dataclass(frozen=True)
class NoOptions:
    """The options of a method that has none (the static mixture)."""


@dataclass(frozen=True)
class RoundOptions:
    """Round-based methods (Aioli, Skill-it): how often the mixture is updated and by how much."""

    update_steps: Optional[int] = option(None, "round length in steps (Aioli, Skill-it)")
    eta: Optional[float] = option(None, "exponentiated-gradient step size (Aioli, Skill-it)")


@dataclass(frozen=True)
class RunFacts:
    """What a method may know about the run besides its own options (all from the run's flags)."""

    seed: int = 0  # --selection_seed
    batch_size: Optional[int] = None  # rows per optimizer update
    gradient_accumulation_steps: int = 1
    log_every: int = 10  # spacing of the methods' trajectories
    break_steps: Optional[int] = None  # end of the analysis window of a dynamic sweep's parent
    warmup_steps: int = 0
    lr_scheduler: str = "linear"

    @classmethod
    def from_namespace(cls, namespace):
        seed = getattr(namespace, "selection_seed", 0)
        facts = from_namespace(cls, namespace)
        return dataclasses.replace(facts, seed=int(seed or 0))


def normalize_weights(values, k: int, what: str) -> np.ndarray:
    """Validate and normalize a user-given mixture; `what` names the flag or file for the error."""
    values = list(values) if isinstance(values, (list, tuple, np.ndarray)) else [values]
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)) for v in values):
        shown = [v for v in values if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number))]
        raise UsageError(f"{what}: weights must be numbers, got {json.dumps(shown[0], default=str)}")
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size != k:
        raise UsageError(f"{what}: got {arr.size} values for {k} groups; give one value per group of --slice_list")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise UsageError(f"{what}: values must be finite and non-negative, got {arr.tolist()}")
    total = arr.sum()
    if total <= 0:
        raise UsageError(f"{what}: values are all zero; give at least one positive value")
    return arr / total


def mean_token_loss(model, batch, ctx: StepContext):
    """Mean cross-entropy over the tokens that count (the default training objective)."""
    losses, mask = ctx.token_losses(model, batch)
    return (losses * mask).sum() / mask.sum().clamp_min(1.0)


class MixingMethod:
    """Base class: a static mixture given at construction. Subclasses override what they need.

    Constructed as `cls(groups, options, total_steps, run, initial_weights)`: `options` is an instance
    of the class's `Options` (a frozen dataclass whose fields are the method's flags, declared in the
    method's file with `options.option`), `run` the RunFacts, `total_steps` the number of optimizer
    updates. Validate in `__init__` and raise `UsageError` naming the flag and the fix.
    """

    # True for a method whose training_loss writes the parameters' gradients itself (DoGE): the loop then
    # hands it the bare model, not the DDP wrapper, whose gradient hooks expect a backward pass
    writes_gradients = False
    name = "static"
    Options = NoOptions

    def __init__(self, groups: list, options: Any = None, total_steps: int = 0, run: Optional[RunFacts] = None,
                 initial_weights: Optional[np.ndarray] = None):
        self.groups = list(groups)
        self.k = len(self.groups)
        self.options = self.Options() if options is None else options
        self.run = RunFacts() if run is None else run
        self.total_steps = int(total_steps)
        self.seed = self.run.seed
        w = np.full(self.k, 1.0 / self.k) if initial_weights is None else np.asarray(initial_weights, float)
        self.weights = w / w.sum()

    @classmethod
    def from_args(cls, groups: list, namespace: Any, total_steps: int, initial_weights: Optional[np.ndarray] = None):
        """The method built from a parsed command line: its Options and the RunFacts are read from it."""
        return cls(groups, from_namespace(cls.Options, namespace), total_steps, RunFacts.from_namespace(namespace),
                   initial_weights=initial_weights)

    # -- what the loop asks -------------------------------------------------------------------
    def mixture(self, step: int) -> Mixture:
        return Mixture(self.weights.copy())

    def wants_eval(self, step: int) -> bool:
        return False

    #: windows per group for the evaluations the method asks for; None = the run's --max_eval_samples
    eval_max_windows: Optional[int] = None

    def observe_eval(self, step: int, losses: np.ndarray) -> None:
        pass

    def training_loss(self, model, batch, ctx: StepContext):
        return mean_token_loss(model, batch, ctx)

    def after_step(self, step: int, ctx: StepContext) -> None:
        pass

    # -- what the loop records ----------------------------------------------------------------
    def log_values(self) -> dict:
        """Extra scalars for this step's line in metrics.jsonl (JSON-serializable)."""
        return {}

    def artifacts(self) -> dict:
        """{file name: JSON-serializable object} written into the run directory at checkpoints and at
        the end (for example Aioli's A matrices per round, DoReMi's averaged weights)."""
        return {}

    def tables(self) -> dict:
        """{name: {"columns": [...], "rows": [[...], ...]}}: the method's internal state as tables for the
        experiment tracker (wandb), logged once at the end of the run (for example Aioli's A per round)."""
        return {}

    def state_dict(self) -> dict:
        return {"weights": self.weights.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.weights = np.asarray(state["weights"], dtype=np.float64)

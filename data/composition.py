"""Batch composition and per-group order: the mixture rules shared by every sampler.

- `BatchComposer` decides which group each of the B rows of a batch comes from: `exact` (floor(w*B) plus
  extras chosen by the PD^2 rule, so every batch is within one row of w*B per group and the long run
  within one row of w*N) or `multinomial` (i.i.d., the paper's); `next(exact=True)` forces exact.
- `EpochOrder` decides which item of a group comes next: a seeded permutation per (group, epoch) and a
  cursor, untouched by mixture changes; its state is a few integers per group.
- Both samplers (token windows, instruction examples) delegate to them. The rules, RNGs and bounds in
  full: docs/data.md.
"""
from __future__ import annotations

import math
import zlib
from typing import Optional

import numpy as np

from errors import UsageError

SAMPLING_MODES = ("exact", "multinomial")

_FLOAT_TOL = 1e-9  # relative float slack for floor/ceil of quantities that are integers in exact arithmetic


def group_key(name: str) -> int:
    """Stable integer key of a group name (crc32 of its UTF-8 bytes), used in RNG seeds."""
    return zlib.crc32(name.encode("utf-8"))


def _tolerant_floor(x: float) -> int:
    return math.floor(x + _FLOAT_TOL * max(1.0, abs(x)))


def _tolerant_ceil(x: float) -> int:
    return math.ceil(x - _FLOAT_TOL * max(1.0, abs(x)))


def pd2_extras(rates: list, given: list, t: int, r: int) -> list:
    """Indices of the r groups that get an extra item in batch t (0-based within the phase).

    rates: frac(w*B) per group, in [0, 1), summing to r; given: extras each group got in the phase.
    PD^2: the next unit (subtask i = given+1) of group j is released at floor((i-1)/rate) and due at
    ceil(i/rate); pick released units by earliest deadline, ties by b-bit (1 first), then by group
    deadline for heavy rates (>= 1/2, later first), then by larger carried error. Plain Python: for
    k of a few to a few dozen groups it is several times faster than a dozen tiny numpy calls.
    """
    keys = []
    for j, rate in enumerate(rates):
        if rate <= 0.0:  # zero rate: never an extra (in particular, zero weight: never drawn)
            continue
        i = given[j] + 1
        deadline = _tolerant_ceil(i / rate)
        bbit = deadline - _tolerant_floor(i / rate)
        group_deadline = 0
        if rate >= 0.5:
            group_deadline = _tolerant_ceil(_tolerant_ceil(deadline * (1.0 - rate)) / (1.0 - rate))
        # released units first; float rounding could in principle leave fewer than r released
        unreleased = _tolerant_floor((i - 1) / rate) > t
        keys.append((unreleased, deadline, -bbit, -group_deadline, -(rate * t - given[j]), j))
    keys.sort()
    return [key[-1] for key in keys[:r]]


def check_sampling(sampling: str) -> None:
    if sampling not in SAMPLING_MODES:
        raise UsageError(f"--sampling must be 'exact' or 'multinomial', got {sampling!r}")


class BatchComposer:
    """Group index of every row of each batch (see the module docstring). `sampling` is "exact" or
    "multinomial"; `next(exact=True)` forces the exact rule for one batch (Aioli's probes)."""

    def __init__(self, groups: list, batch_size: int, seed: int, sampling: str = "exact", weights=None):
        check_sampling(sampling)
        if int(batch_size) != batch_size or batch_size < 1:
            raise UsageError(f"batch size must be a positive integer, got {batch_size}")
        if int(seed) != seed or seed < 0:
            raise UsageError(f"seed must be a non-negative integer, got {seed}")
        if not groups:
            raise UsageError("no data groups given; pass at least one group in --slice_list")
        self.groups = list(groups)
        self.k = len(self.groups)
        self.batch_size = int(batch_size)
        self.sampling = sampling
        self._group_ids = np.arange(self.k)
        self._rng = np.random.Generator(np.random.PCG64(
            np.random.SeedSequence([int(seed), 1, group_key("composition")])))
        self._weights = np.full(self.k, 1.0 / self.k)
        self._reset_phase()
        if weights is not None:
            self.set_weights(weights)

    @property
    def weights(self) -> np.ndarray:
        """Current mixture, shape (k,), on the simplex (a copy)."""
        return self._weights.copy()

    def set_weights(self, weights) -> None:
        """Set the mixture (any positive scale; normalized). Changing the values starts a new
        mixture phase: the exact rule's carried error restarts at 0."""
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size != self.k:
            raise ValueError(f"got {w.size} weights for {self.k} groups ({', '.join(self.groups)})")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"weights must be finite and non-negative, got {w.tolist()}")
        if w.sum() <= 0:
            raise ValueError("weights are all zero; at least one group needs a positive weight")
        w = w / w.sum()
        if not np.array_equal(w, self._weights):
            self._weights = w
            self._reset_phase()

    def _reset_phase(self) -> None:
        x = self._weights * self.batch_size
        # Plain floor: rates stay in [0, 1) and sum to `extras` up to rounding, so at least `extras`
        # groups have a positive rate and a zero-weight group (rate exactly 0) is never picked.
        base = np.floor(x)
        self._base = base.astype(np.int64)         # items every exact batch gives each group
        self._rates = (x - base).tolist()          # share of batches in which it gets one more
        self._extras = int(self.batch_size - self._base.sum())  # groups that get one more per batch
        self._phase_batches = 0                    # exact batches drawn since the weights changed
        self._phase_given = [0] * self.k           # extra items each group got in those batches

    def exact_counts(self) -> np.ndarray:
        """Rows per group for the next exact batch (advances the carried error), shape (k,)."""
        counts = self._base.copy()
        if self._extras > 0:
            for j in pd2_extras(self._rates, self._phase_given, self._phase_batches, self._extras):
                counts[j] += 1
                self._phase_given[j] += 1
        self._phase_batches += 1
        return counts

    def next(self, exact: Optional[bool] = None):
        """(group ids (B,) int64, counts (k,) int64) of the next batch."""
        if exact or self.sampling == "exact":
            counts = self.exact_counts()
            gids = self._rng.permutation(np.repeat(self._group_ids, counts))
        else:
            cdf = np.cumsum(self._weights)
            u = self._rng.random(self.batch_size) * cdf[-1]
            # side="right": a zero-weight group is an empty interval and is never hit
            gids = np.minimum(np.searchsorted(cdf, u, side="right"), self.k - 1)
            counts = np.bincount(gids, minlength=self.k)
        return gids.astype(np.int64, copy=False), counts.astype(np.int64, copy=False)

    def state_dict(self) -> dict:
        """JSON-serializable: the weights, the carried error (as integers, so resuming is exact) and
        the composition RNG."""
        return {"weights": self._weights.tolist(), "phase_batches": int(self._phase_batches),
                "phase_extras": {g: int(a) for g, a in zip(self.groups, self._phase_given)},
                "composition_rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self._weights = np.asarray(state["weights"], dtype=np.float64)
        self._reset_phase()
        self._phase_batches = int(state["phase_batches"])
        self._phase_given = [int(state["phase_extras"][g]) for g in self.groups]
        self._rng.bit_generator.state = state["composition_rng"]


class EpochOrder:
    """Per group: a seeded permutation of its item indices and a cursor; a group that runs out
    starts its next epoch with a fresh permutation from (seed, 0, crc32(group), epoch). Changing
    the mixture touches neither, and the state is two integers per group."""

    def __init__(self, sizes: dict, seed: int):
        self.groups = list(sizes)
        self.sizes = {g: int(n) for g, n in sizes.items()}
        self.seed = int(seed)
        self._keys = [group_key(g) for g in self.groups]
        self.epoch = [0] * len(self.groups)
        self.cursor = [0] * len(self.groups)
        self._perm = [self._permutation(j, 0) for j in range(len(self.groups))]

    def _permutation(self, j: int, epoch: int) -> np.ndarray:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 0, self._keys[j], epoch])))
        return rng.permutation(self.sizes[self.groups[j]])

    def take(self, j: int, n: int) -> np.ndarray:
        """The next n item indices of group j, moving to new epochs as needed. Read-only: when they
        lie within one epoch this is a view of the epoch's permutation, not a copy."""
        parts = []
        while n > 0:
            perm, cur = self._perm[j], self.cursor[j]
            got = min(n, len(perm) - cur)
            parts.append(perm[cur:cur + got])
            self.cursor[j] = cur + got
            n -= got
            if self.cursor[j] == len(perm):
                self.epoch[j] += 1
                self.cursor[j] = 0
                self._perm[j] = self._permutation(j, self.epoch[j])
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def state_dict(self) -> dict:
        return {"epoch": {g: int(e) for g, e in zip(self.groups, self.epoch)},
                "cursor": {g: int(c) for g, c in zip(self.groups, self.cursor)}}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = [int(state["epoch"][g]) for g in self.groups]
        self.cursor = [int(state["cursor"][g]) for g in self.groups]
        self._perm = [self._permutation(j, self.epoch[j]) for j in range(len(self.groups))]


class ComposedSampler:
    """The mixture side shared by the window sampler (data/sampler.py) and the instruction sampler
    (data/instruction_sampler.py): a `BatchComposer` decides which group each row comes from and an
    `EpochOrder` which item of the group comes next. A subclass sets `groups`, `k`, `batch_size`,
    `seed`, `_composer`, `_order` and `_drawn` (items drawn per group, int64 (k,)) and turns item
    indices into rows."""

    @property
    def sampling(self) -> str:
        """"exact" or "multinomial" (the composition rule of `next_batch()` without `exact`)."""
        return self._composer.sampling

    @sampling.setter
    def sampling(self, value: str) -> None:
        self._composer.sampling = value

    @property
    def weights(self) -> np.ndarray:
        """Current mixture, shape (k,), on the simplex (a copy)."""
        return self._composer.weights

    def set_weights(self, weights) -> None:
        """Set the mixture (any positive scale; normalized). Cheap: nothing is rebuilt. Changing the
        values restarts the exact rule's carried error."""
        self._composer.set_weights(weights)

    def exact_counts(self) -> np.ndarray:
        """Items per group for the next exact batch (advances the carried error), shape (k,)."""
        return self._composer.exact_counts()

    @property
    def epochs(self) -> dict:
        """{group: completed passes over its items}."""
        return {g: int(e) for g, e in zip(self.groups, self._order.epoch)}

    def _drawn_by_group(self) -> dict:
        return {g: int(n) for g, n in zip(self.groups, self._drawn)}

    def _load_mixture_state(self, state: dict, checks, fix: str, drawn_key: str) -> None:
        """Refuse a state saved for another configuration (`checks`: (key, this run's value) pairs;
        `fix` says what to keep equal), then restore composer, order and counts."""
        for key, mine in checks:
            if state.get(key) != mine:
                raise UsageError(f"sampler state was saved with {key}={state.get(key)} but this run has {mine}; "
                                 f"resume with the same {fix}")
        self._composer.load_state_dict(state)
        self._order.load_state_dict(state)
        self._drawn = np.array([state[drawn_key][g] for g in self.groups], dtype=np.int64)

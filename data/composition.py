"""Batch composition and per-group order, shared by samplers whose items are not token windows.

`BatchComposer` decides WHICH group each of the B rows of a batch comes from; `EpochOrder` decides
WHICH item of that group comes next. They reproduce `data.sampler.MixtureSampler` exactly (same
seeds, same PD^2 rule from `data.sampler._pd2_pick`, same carried-error reset on a weight change,
same multinomial draw), so an instruction-task run composes its batches like a token-window run
with the same seed and weights. `tests/test_instructions.py` checks this equivalence draw by draw,
so MixtureSampler can later delegate its composition here without changing any stream.

See data/sampler.py's module docstring for the rule and its guarantees (each exact batch within one
item of w*B per group; the long-run count within one item of w*N).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from data.sampler import _name_key, _pd2_pick
from errors import UsageError


class BatchComposer:
    """Group index of every row of each batch. `sampling` is "exact" or "multinomial";
    `next(exact=True)` forces the exact rule for one batch (Aioli's probes)."""

    def __init__(self, groups: list, batch_size: int, seed: int, sampling: str = "exact", weights=None):
        if sampling not in ("exact", "multinomial"):
            raise UsageError(f"--sampling must be 'exact' or 'multinomial', got {sampling!r}")
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
        # the same stream as MixtureSampler's composition generator
        self._rng = np.random.Generator(np.random.PCG64(
            np.random.SeedSequence([int(seed), 1, _name_key("composition")])))
        self._weights = np.full(self.k, 1.0 / self.k)
        self._reset_phase()
        if weights is not None:
            self.set_weights(weights)

    @property
    def weights(self) -> np.ndarray:
        return self._weights.copy()

    def set_weights(self, weights) -> None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size != self.k:
            raise ValueError(f"got {w.size} weights for {self.k} groups ({', '.join(self.groups)})")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"weights must be finite and non-negative, got {w.tolist()}")
        if w.sum() <= 0:
            raise ValueError("weights are all zero; at least one group needs a positive weight")
        w = w / w.sum()
        if not np.array_equal(w, self._weights):  # a new mixture phase: its own carried error
            self._weights = w
            self._reset_phase()

    def _reset_phase(self) -> None:
        x = self._weights * self.batch_size
        base = np.floor(x)
        self._base = base.astype(np.int64)
        self._rates = (x - base).tolist()
        self._extras = int(self.batch_size - self._base.sum())
        self._phase_batches = 0
        self._phase_given = [0] * self.k

    def exact_counts(self) -> np.ndarray:
        """Rows per group for the next exact batch (advances the carried error), shape (k,)."""
        counts = self._base.copy()
        if self._extras > 0:
            for j in _pd2_pick(self._rates, self._phase_given, self._phase_batches, self._extras):
                counts[j] += 1
                self._phase_given[j] += 1
        self._phase_batches += 1
        return counts

    def next(self, exact: Optional[bool] = None):
        """(group ids (B,) int64, counts (k,) int64) of the next batch."""
        if exact or self.sampling == "exact":
            counts = self.exact_counts()
            # shuffled so that the micro-batches of a split batch each carry the mixture on average
            gids = self._rng.permutation(np.repeat(np.arange(self.k), counts))
        else:
            cdf = np.cumsum(self._weights)
            u = self._rng.random(self.batch_size) * cdf[-1]
            gids = np.minimum(np.searchsorted(cdf, u, side="right"), self.k - 1)
            counts = np.bincount(gids, minlength=self.k)
        return gids.astype(np.int64), counts.astype(np.int64)

    def state_dict(self) -> dict:
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
        self._keys = [_name_key(g) for g in self.groups]
        self.epoch = [0] * len(self.groups)
        self.cursor = [0] * len(self.groups)
        self._perm = [self._permutation(j, 0) for j in range(len(self.groups))]

    def _permutation(self, j: int, epoch: int) -> np.ndarray:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 0, self._keys[j], epoch])))
        return rng.permutation(self.sizes[self.groups[j]])

    def take(self, j: int, n: int) -> np.ndarray:
        """The next n item indices of group j, moving to new epochs as needed."""
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
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def state_dict(self) -> dict:
        return {"epoch": dict(zip(self.groups, self.epoch)), "cursor": dict(zip(self.groups, self.cursor))}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = [int(state["epoch"][g]) for g in self.groups]
        self.cursor = [int(state["cursor"][g]) for g in self.groups]
        self._perm = [self._permutation(j, self.epoch[j]) for j in range(len(self.groups))]

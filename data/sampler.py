"""The mixture sampler: batches of context-length windows drawn from k groups with weights w.

Units: a *window* is L = `context_length` consecutive tokens; window i of a group is
tokens[i*L:(i+1)*L] (non-overlapping, the tail shorter than L is dropped and nothing is ever shifted:
the paper code re-cut a reshuffled stream, which misaligned every window after the tail). A *batch*
is B = `batch_size` windows.

Per group: a permutation of its window indices, regenerated from (seed, group, epoch), and a cursor.
A group that runs out starts its next epoch with a fresh permutation. Changing the weights touches
neither, so a mixture change never repeats nor skips a window within an epoch, and the state that
resumes the stream is a few integers per group (permutations are regenerated, never saved).

Composition of a batch (how many windows per group):

- `sampling="exact"`: per-batch counts are floor(w*B) plus one extra window for r = B - sum(floor)
  groups, chosen so that the carried error (w*B*n minus the windows given, over the n batches drawn
  since the weights last changed) stays below one window. Each batch is then within 1 window of w*B
  per group, and long-run counts within 1 window of w*N. Choosing the extras is a Pfair scheduling
  problem (r processors, task rates frac(w*B)); we use the PD^2 priority rule (Anderson & Srinivasan
  2000), which is optimal, so the bound holds for every weight vector. (Plain "largest carried
  error" greedy, Megatron's blended-dataset rule, drifts to ~1.1 windows for some weights.)
  When `set_weights` changes the values the carried error restarts at 0: each mixture phase (an
  Aioli probe, a Skill-it round) is then exact on its own instead of paying off the previous phase's
  rounding with the new weights.
- `sampling="multinomial"`: the group of each sample is i.i.d. Categorical(w) (the paper's
  behaviour). `next_batch(exact=True)` forces the exact rule for one batch (Aioli's probes).

Order within a batch: exact batches are shuffled with the composition RNG (so micro-batches of a
split batch have the batch's mixture on average, not one group each); multinomial batches keep their
i.i.d. draw order. Both are deterministic given the seed.

RNGs: one `np.random.Generator` per group and epoch seeded from SeedSequence((seed, 0, crc32(group),
epoch)), and one for composition draws from (seed, 1, crc32("composition")): stable across processes
and Python versions (never `hash()`, never the global RNG).
"""
from __future__ import annotations

import math
import mmap
import os
import zlib
from typing import Optional

import numpy as np

from errors import UsageError

_TOL = 1e-9  # relative float slack for floor/ceil of quantities that are integers in exact arithmetic


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def _floor(x: float) -> int:
    return math.floor(x + _TOL * max(1.0, abs(x)))


def _ceil(x: float) -> int:
    return math.ceil(x - _TOL * max(1.0, abs(x)))


def _pd2_pick(rates: list, given: list, t: int, r: int) -> list:
    """Indices of the r groups that get an extra window in batch t (0-based within the phase).

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
        deadline = _ceil(i / rate)
        bbit = deadline - _floor(i / rate)
        group_deadline = 0
        if rate >= 0.5:
            group_deadline = _ceil(_ceil(deadline * (1.0 - rate)) / (1.0 - rate))
        # released units first; float rounding could in principle leave fewer than r released
        unreleased = _floor((i - 1) / rate) > t
        keys.append((unreleased, deadline, -bbit, -group_deadline, -(rate * t - given[j]), j))
    keys.sort()
    return [key[-1] for key in keys[:r]]


def _file_source(tokens):
    """(fd, byte offset, dtype) when `tokens` is a memmap of a file, else None. The fd stays open
    for the sampler's lifetime (read-only; closed by the OS at exit)."""
    # only an original mapping (its base is the mmap object): a slice or view of one may start
    # anywhere in the file, so it is read through numpy instead
    if not (isinstance(tokens, np.memmap) and isinstance(tokens.base, mmap.mmap) and tokens.filename):
        return None
    return os.open(tokens.filename, os.O_RDONLY), int(tokens.offset), tokens.dtype


class MixtureSampler:
    """Draws batches of windows from ordered `sources` {group: 1-D token array (a memmap)}.

    batch_size B and context_length L are in windows and tokens; `seed` a non-negative int;
    `weights` (length k, any positive scale) defaults to uniform.
    """

    def __init__(self, sources: dict, context_length: int, batch_size: int, seed: int,
                 sampling: str = "exact", weights=None):
        if sampling not in ("exact", "multinomial"):
            raise UsageError(f"--sampling must be 'exact' or 'multinomial', got {sampling!r}")
        if int(context_length) != context_length or context_length < 1:
            raise UsageError(f"--context_length must be a positive integer, got {context_length}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise UsageError(f"batch size must be a positive integer, got {batch_size}")
        if int(seed) != seed or seed < 0:
            raise UsageError(f"seed must be a non-negative integer, got {seed}")
        if not sources:
            raise UsageError("no data groups given; pass at least one group in --slice_list")
        self.groups = list(sources)
        self.k = len(self.groups)
        self.context_length = L = int(context_length)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.sampling = sampling
        # (n_windows, L) views: slicing and reshaping a memmap is zero-copy, and fancy indexing a view
        # reads only the chosen rows, so a multi-GB group never enters memory. Memmapped files are
        # read with pread instead (see _rows): mapped pages would count in the process's RSS.
        self._views = []
        self._files = []
        for g, tokens in sources.items():
            tokens = np.asarray(tokens) if not isinstance(tokens, np.ndarray) else tokens
            if tokens.ndim != 1:
                raise ValueError(f"group {g}: token array must be 1-D, got shape {tokens.shape}")
            n = len(tokens) // L
            if n == 0:
                raise UsageError(f"group {g} has {len(tokens)} tokens, fewer than one window of "
                                 f"--context_length {L}; use a smaller --context_length or more data")
            self._views.append(tokens[: n * L].reshape(n, L))
            self._files.append(_file_source(tokens))
        self.num_windows = {g: len(v) for g, v in zip(self.groups, self._views)}
        self._keys = [_name_key(g) for g in self.groups]
        self._epoch = [0] * self.k
        self._cursor = [0] * self.k
        self._perm = [self._permutation(j, 0) for j in range(self.k)]
        self._drawn = np.zeros(self.k, dtype=np.int64)
        self._comp_rng = np.random.Generator(np.random.PCG64(
            np.random.SeedSequence([self.seed, 1, _name_key("composition")])))
        self._weights = np.full(self.k, 1.0 / self.k)
        self._reset_phase()
        if weights is not None:
            self.set_weights(weights)

    # -- weights ------------------------------------------------------------------------------
    @property
    def weights(self) -> np.ndarray:
        """Current mixture, shape (k,), on the simplex (a copy)."""
        return self._weights.copy()

    def set_weights(self, weights) -> None:
        """Set the mixture (any positive scale; normalized). Cheap: nothing is rebuilt. Changing the
        values restarts the exact rule's carried error (see the module docstring)."""
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
        self._base = base.astype(np.int64)         # windows every exact batch gives each group
        self._rates = (x - base).tolist()          # share of batches in which it gets one more
        self._extras = int(self.batch_size - self._base.sum())  # groups that get one more per batch
        self._phase_batches = 0                    # exact batches drawn since the weights changed
        self._phase_given = [0] * self.k           # extra windows each group got in those batches

    # -- drawing ------------------------------------------------------------------------------
    def exact_counts(self) -> np.ndarray:
        """Windows per group for the next exact batch (advances the carried error), shape (k,)."""
        counts = self._base.copy()
        if self._extras > 0:
            for j in _pd2_pick(self._rates, self._phase_given, self._phase_batches, self._extras):
                counts[j] += 1
                self._phase_given[j] += 1
        self._phase_batches += 1
        return counts

    def next_batch(self, exact: Optional[bool] = None):
        """One batch: (windows (B, L) int64, group indices (B,) int64 into `groups`).

        exact=True forces the exact composition; None/False follow the sampler's `sampling`.
        """
        B = self.batch_size
        if exact or self.sampling == "exact":
            counts = self.exact_counts()
            gids = self._comp_rng.permutation(np.repeat(np.arange(self.k), counts))
        else:
            cdf = np.cumsum(self._weights)
            u = self._comp_rng.random(B) * cdf[-1]
            # side="right": a zero-weight group is an empty interval and is never hit
            gids = np.minimum(np.searchsorted(cdf, u, side="right"), self.k - 1)
            counts = np.bincount(gids, minlength=self.k)
        out = np.empty((B, self.context_length), dtype=np.int64)
        for j in np.flatnonzero(counts):
            rows = self._take(j, int(counts[j]))
            out[gids == j] = self._rows(j, rows)
        self._drawn += counts
        return out, gids.astype(np.int64)

    def _rows(self, j: int, rows: np.ndarray) -> np.ndarray:
        """Windows `rows` of group j as an (n, L) array. For a file-backed memmap, one pread per
        window: touching the file through the mapping would make every page read (and the kernel's
        fault-around neighbours) resident in this process, so RSS would grow with the corpus."""
        source = self._files[j]
        if source is None:
            return self._views[j][rows]
        fd, base, dtype = source
        width = self.context_length * dtype.itemsize
        buf = bytearray(len(rows) * width)
        view = memoryview(buf)
        for i, r in enumerate(rows.tolist()):
            if os.preadv(fd, [view[i * width:(i + 1) * width]], base + r * width) != width:
                raise OSError(f"short read from the shard of group {self.groups[j]}")
        return np.frombuffer(buf, dtype=dtype).reshape(len(rows), self.context_length)

    def _take(self, j: int, n: int) -> np.ndarray:
        """The next n window indices of group j, moving to new epochs as needed."""
        parts = []
        while n > 0:
            perm, cur = self._perm[j], self._cursor[j]
            got = min(n, len(perm) - cur)
            parts.append(perm[cur: cur + got])
            self._cursor[j] = cur + got
            n -= got
            if self._cursor[j] == len(perm):
                self._epoch[j] += 1
                self._cursor[j] = 0
                self._perm[j] = self._permutation(j, self._epoch[j])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _permutation(self, j: int, epoch: int) -> np.ndarray:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 0, self._keys[j], epoch])))
        return rng.permutation(len(self._views[j]))

    # -- bookkeeping --------------------------------------------------------------------------
    @property
    def windows_drawn(self) -> dict:
        """{group: windows drawn so far} (for logging; multiply by L for tokens)."""
        return {g: int(n) for g, n in zip(self.groups, self._drawn)}

    @property
    def epochs(self) -> dict:
        """{group: completed passes over its windows}."""
        return {g: int(e) for g, e in zip(self.groups, self._epoch)}

    def state_dict(self) -> dict:
        """JSON-serializable state; `load_state_dict` resumes the identical stream."""
        return {
            "version": 1,
            "seed": self.seed,
            "context_length": self.context_length,
            "batch_size": self.batch_size,
            "sampling": self.sampling,
            "groups": list(self.groups),
            "num_windows": dict(self.num_windows),
            "weights": self._weights.tolist(),
            "epoch": {g: int(e) for g, e in zip(self.groups, self._epoch)},
            "cursor": {g: int(c) for g, c in zip(self.groups, self._cursor)},
            "windows_drawn": self.windows_drawn,
            # carried error of the exact rule, kept as integers so that resuming is exact
            "phase_batches": int(self._phase_batches),
            "phase_extras": {g: int(a) for g, a in zip(self.groups, self._phase_given)},
            "composition_rng": self._comp_rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        for key, mine in (("groups", self.groups), ("seed", self.seed), ("context_length", self.context_length),
                          ("batch_size", self.batch_size), ("num_windows", self.num_windows)):
            if state.get(key) != mine:
                raise UsageError(f"sampler state was saved with {key}={state.get(key)} but this run has "
                                 f"{mine}; resume with the same data, --slice_list, --seed, --context_length "
                                 "and batch size")
        self._weights = np.asarray(state["weights"], dtype=np.float64)
        self._reset_phase()
        self._phase_batches = int(state["phase_batches"])
        self._phase_given = [int(state["phase_extras"][g]) for g in self.groups]
        self._epoch = [int(state["epoch"][g]) for g in self.groups]
        self._cursor = [int(state["cursor"][g]) for g in self.groups]
        self._perm = [self._permutation(j, self._epoch[j]) for j in range(self.k)]
        self._drawn = np.array([state["windows_drawn"][g] for g in self.groups], dtype=np.int64)
        self._comp_rng.bit_generator.state = state["composition_rng"]

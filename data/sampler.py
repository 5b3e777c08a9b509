"""The mixture sampler: batches of context-length windows drawn from k groups with weights w.

Units: a *window* is L = `context_length` consecutive tokens; window i of a group is
tokens[i*L:(i+1)*L] (non-overlapping, the tail shorter than L is dropped and nothing is ever shifted:
the paper code re-cut a reshuffled stream, which misaligned every window after the tail). A *batch*
is B = `batch_size` windows.

Which group each row of a batch comes from (`sampling="exact"`: PD^2 counts within one window of
w*B per batch and of w*N in the long run; `"multinomial"`: i.i.d. draws) and which window of that
group comes next (a seeded permutation per group and epoch, with a cursor, untouched by weight
changes) are decided by `data.composition.BatchComposer` and `EpochOrder`: see that module's
docstring for the rules, their guarantees and the RNG seeds. This module adds the windows: cutting
the token arrays and reading the chosen rows.
"""
from __future__ import annotations

import mmap
import os
import weakref
from typing import Optional

import numpy as np

from data.composition import BatchComposer, ComposedSampler, EpochOrder, check_sampling
from data.shards import _check_context_length
from errors import UsageError


def _close_fds(files: list) -> None:
    for source in files:
        if source is not None:
            os.close(source[0])


def _file_source(tokens):
    """(fd, byte offset, dtype) when `tokens` is a memmap of a file, else None. The fd stays open
    for the sampler's lifetime (read-only; closed when the sampler is garbage-collected)."""
    # only an original mapping (its base is the mmap object): a slice or view of one may start
    # anywhere in the file, so it is read through numpy instead
    if not (isinstance(tokens, np.memmap) and isinstance(tokens.base, mmap.mmap) and tokens.filename):
        return None
    return os.open(tokens.filename, os.O_RDONLY), int(tokens.offset), tokens.dtype


class MixtureSampler(ComposedSampler):
    """Draws batches of windows from ordered `sources` {group: 1-D token array (a memmap)}.

    batch_size B and context_length L are in windows and tokens; `seed` a non-negative int;
    `weights` (length k, any positive scale) defaults to uniform.
    """

    def __init__(self, sources: dict, context_length: int, batch_size: int, seed: int,
                 sampling: str = "exact", weights=None):
        check_sampling(sampling)
        _check_context_length(context_length)
        # validates batch_size, seed and that there is a group (weights are set once the data is cut)
        self._composer = BatchComposer(list(sources), batch_size, seed, sampling)
        self.groups = self._composer.groups
        self.k = len(self.groups)
        self.context_length = L = int(context_length)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        # (n_windows, L) views: slicing and reshaping a memmap is zero-copy, and fancy indexing a view
        # reads only the chosen rows, so a multi-GB group never enters memory. Memmapped files are
        # read with pread instead (see _rows): mapped pages would count in the process's RSS.
        self._views = []
        self._files = []
        # one process may build many samplers (sweeps, tests): close the shard fds with the sampler
        weakref.finalize(self, _close_fds, self._files)
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
        self._order = EpochOrder(self.num_windows, self.seed)
        self._drawn = np.zeros(self.k, dtype=np.int64)
        if weights is not None:
            self.set_weights(weights)

    def next_batch(self, exact: Optional[bool] = None):
        """One batch (data.bundle's mapping): `input_ids` = `labels` = the windows (B, L) int64 (one array:
        every token is scored) and `group_ids` (B,) int64 indices into `groups`.

        exact=True forces the exact composition; None/False follow the sampler's `sampling`.
        Exact batches are shuffled; multinomial batches keep their i.i.d. draw order.
        """
        gids, counts = self._composer.next(exact)
        out = np.empty((self.batch_size, self.context_length), dtype=np.int64)
        for j in np.flatnonzero(counts):
            rows = self._order.take(j, int(counts[j]))
            out[gids == j] = self._rows(j, rows)
        self._drawn += counts
        return {"input_ids": out, "labels": out, "group_ids": gids}

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

    # -- bookkeeping --------------------------------------------------------------------------
    @property
    def windows_drawn(self) -> dict:
        """{group: windows drawn so far} (for logging; multiply by L for tokens)."""
        return self._drawn_by_group()

    def state_dict(self) -> dict:
        """JSON-serializable state; `load_state_dict` resumes the identical stream."""
        comp, order = self._composer.state_dict(), self._order.state_dict()
        return {
            "version": 1,
            "seed": self.seed,
            "context_length": self.context_length,
            "batch_size": self.batch_size,
            "sampling": self.sampling,
            "groups": list(self.groups),
            "num_windows": dict(self.num_windows),
            "weights": comp["weights"],
            "epoch": order["epoch"],
            "cursor": order["cursor"],
            "windows_drawn": self.windows_drawn,
            # carried error of the exact rule, kept as integers so that resuming is exact
            "phase_batches": comp["phase_batches"],
            "phase_extras": comp["phase_extras"],
            "composition_rng": comp["composition_rng"],
        }

    def load_state_dict(self, state: dict) -> None:
        checks = (("groups", self.groups), ("seed", self.seed), ("context_length", self.context_length),
                  ("batch_size", self.batch_size), ("num_windows", self.num_windows))
        self._load_mixture_state(state, checks, "data, --slice_list, --seed, --context_length and batch size",
                                 "windows_drawn")

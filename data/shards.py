"""Reading prepared token shards: `<root>/<group>/{train,val,test}.bin` flat token memmaps.

Two layouts are readable (see docs/formats.md):

- ours: a `meta.json` at the root gives dtype, vocabulary size, EOS id, group order and token counts;
- the paper repo's: no `meta.json`, headerless uint16 files, no EOS between documents. We assume
  uint16 there (the paper hard-codes it) and say so once per process; `vocab_size` and `eos_id` are
  None because scanning a multi-GB file for its largest id would cost more than it tells.

Units: `tokens(...)` returns token arrays; `num_windows` / `eval_windows` count non-overlapping
context-length windows (window i = tokens[i*L:(i+1)*L]; the tail shorter than L is dropped). A
bounded evaluation takes windows spread over the whole split (`spread_indices`), never the first n.
Every mistake the user can fix raises `UsageError` with one line naming the directory/file and the fix.
"""
from __future__ import annotations

import json
import os
import warnings
from typing import Optional

import numpy as np

from errors import UsageError

SPLITS = ("train", "val", "test")
META_FILE = "meta.json"
PAPER_DTYPE = np.dtype(np.uint16)

# The headerless-layout warning is said once per process: a run opens the train and the val
# directory, and evaluation may reopen them; repeating the same sentence would bury real warnings.
_warned_headerless = False


def _warn_headerless(root: str) -> None:
    global _warned_headerless
    if not _warned_headerless:
        _warned_headerless = True
        warnings.warn(
            f"{root} has no {META_FILE}: reading the paper repo's headerless layout, assuming uint16 "
            "token ids (vocabulary size and EOS id unknown); prepare data with data/prepare.py to "
            "record them",
            stacklevel=3,
        )


class ShardSet:
    """A directory of prepared shards. Build with `ShardSet.open(root, groups)`.

    Attributes: `root` (str), `meta` (the parsed meta.json dict, or None for the paper's layout),
    `dtype` (np.dtype of the token ids), `vocab_size` / `eos_id` (int, or None when unknown),
    `groups` (list of group names: the requested ones in the requested order, else the meta's order,
    else the sorted sub-directories), `available` (every group the directory holds).
    """

    def __init__(self, root: str, meta: Optional[dict], dtype, groups: list, available: list):
        self.root = root
        self.meta = meta
        self.dtype = np.dtype(dtype)
        self.vocab_size = None if meta is None or meta.get("vocab_size") is None else int(meta["vocab_size"])
        self.eos_id = None if meta is None or meta.get("eos_id") is None else int(meta["eos_id"])
        self.groups = list(groups)
        self.available = list(available)
        self._cache: dict = {}  # (group, split) -> read-only memmap, opened on first use

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def open(cls, root, groups=None) -> "ShardSet":
        """Open `root`; `groups` is a list of names (or a comma-separated string), None = all."""
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise UsageError(f"data directory {root} does not exist; prepare shards with data/prepare.py "
                             "or pass the directory that holds <group>/train.bin")
        meta_path = os.path.join(root, META_FILE)
        if os.path.exists(meta_path):
            meta = _read_meta(meta_path)
            if "part" in meta:
                part = meta["part"]
                raise UsageError(f"{root} is part {part['index']} of {part['count']} of a sharded preparation; join "
                                 "the parts first: python -m data.prepare --merge PART ... --output DIR")
            available = list(meta["groups"])
            dtype = meta["dtype"]
        else:
            meta = None
            available = sorted(
                d for d in os.listdir(root)
                if any(os.path.isfile(os.path.join(root, d, f"{s}.bin")) for s in SPLITS)
            )
            if not available:
                raise UsageError(f"{root} holds neither {META_FILE} nor <group>/train.bin files; prepare "
                                 "shards with data/prepare.py or point at the prepared directory")
            dtype = PAPER_DTYPE
        if groups is None:
            chosen = list(available)
        else:
            chosen = [g.strip() for g in groups.split(",")] if isinstance(groups, str) else list(groups)
            missing = [g for g in chosen if g not in available]
            if missing:
                raise UsageError(f"group(s) {', '.join(missing)} not in {root}; available: "
                                 f"{', '.join(available)} (fix --slice_list or the data directory)")
            if not chosen:
                raise UsageError(f"no groups selected in {root}; available: {', '.join(available)}")
            if len(set(chosen)) != len(chosen):
                raise UsageError(f"groups listed twice: {','.join(chosen)}; give each group once")
        if meta is None:
            _warn_headerless(root)
        return cls(root, meta, dtype, chosen, available)

    # -- files --------------------------------------------------------------------------------
    def path(self, group: str, split: str) -> str:
        return os.path.join(self.root, group, f"{split}.bin")

    def has_split(self, group: str, split: str) -> bool:
        return os.path.isfile(self.path(group, split))

    def num_tokens(self, group: str, split: str) -> int:
        """Tokens in the split file (from its size; nothing is read). Validates the file."""
        path = self._checked_path(group, split)
        size = os.path.getsize(path)
        if size % self.dtype.itemsize:
            raise UsageError(f"{path} has {size} bytes, not a multiple of {self.dtype.itemsize} ({self.dtype}); "
                             "the file is truncated or the dtype is wrong: re-run data/prepare.py")
        n = size // self.dtype.itemsize
        expected = self._meta_count(group, split)
        if expected is not None and expected != n:
            raise UsageError(f"{path} holds {n} tokens but {META_FILE} says {expected}; the shards are "
                             "incomplete or were modified: re-run data/prepare.py with --overwrite")
        return n

    def tokens(self, group: str, split: str) -> np.ndarray:
        """The split's token ids as a 1-D read-only memmap (opened on first use, then cached)."""
        key = (group, split)
        if key not in self._cache:
            n = self.num_tokens(group, split)
            if n == 0:  # np.memmap refuses empty files; an empty read-only array behaves the same
                arr = np.empty(0, dtype=self.dtype)
                arr.flags.writeable = False
            else:
                arr = np.memmap(self.path(group, split), dtype=self.dtype, mode="r", shape=(n,))
            self._cache[key] = arr
        return self._cache[key]

    def num_windows(self, group: str, split: str, context_length: int) -> int:
        """Non-overlapping windows of `context_length` tokens; UsageError when there is not even one."""
        context_length = _check_context_length(context_length)
        n = self.num_tokens(group, split)
        if n < context_length:
            raise UsageError(f"{self.path(group, split)} has {n} tokens, fewer than one window of "
                             f"--context_length {context_length}; use a smaller --context_length or more data")
        return n // context_length

    def sources(self, split: str, context_length: int) -> dict:
        """{group: token memmap} for `self.groups` in order, each checked to hold >= 1 window: the
        `sources` argument of `data.sampler.MixtureSampler`."""
        out = {}
        for g in self.groups:
            self.num_windows(g, split, context_length)
            out[g] = self.tokens(g, split)
        return out

    def windows(self, group: str, split: str, context_length: int, max_windows: Optional[int] = None) -> np.ndarray:
        """Fixed evaluation windows of one group and split: see `eval_windows`."""
        self.num_windows(group, split, context_length)
        return eval_windows(self.tokens(group, split), context_length, max_windows)

    # -- helpers ------------------------------------------------------------------------------
    def _checked_path(self, group: str, split: str) -> str:
        if group not in self.available:
            raise UsageError(f"group {group} not in {self.root}; available: {', '.join(self.available)}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        path = self.path(group, split)
        if not os.path.isfile(path):
            raise UsageError(f"{path} is missing: group {group} has no {split} split in {self.root}; "
                             "re-run data/prepare.py or point at a directory that has it")
        return path

    def _meta_count(self, group: str, split: str) -> Optional[int]:
        if self.meta is None:
            return None
        entry = self.meta["groups"].get(group)
        if isinstance(entry, dict) and entry.get(split) is not None:
            return int(entry[split])
        return None

    def __repr__(self) -> str:
        layout = "meta.json" if self.meta is not None else "headerless"
        return f"ShardSet({self.root!r}, groups={self.groups}, dtype={self.dtype}, layout={layout})"


def _read_meta(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read {path}: {err}; re-run data/prepare.py with --overwrite") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("groups"), dict) or "dtype" not in meta:
        raise UsageError(f"{path} is not a shard description (needs 'groups' and 'dtype'); "
                         "re-run data/prepare.py with --overwrite")
    try:
        dtype = np.dtype(meta["dtype"])
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "ui":
        raise UsageError(f"{path}: dtype {meta['dtype']!r} is not an integer type; re-run data/prepare.py")
    return meta


def _check_context_length(context_length) -> int:
    if int(context_length) != context_length or context_length < 1:
        raise UsageError(f"--context_length must be a positive integer, got {context_length}")
    return int(context_length)


def spread_indices(total: int, n) -> np.ndarray:
    """`n` indices spread evenly over range(total) (all of them when n is None or >= total).

    Index i is the middle integer of the i-th of n equal strides [i*total/n, (i+1)*total/n), so
    a bounded evaluation samples the whole split (every part of it, its later documents too), and
    the choice is fixed: the same rows for every run, method and seed. Never the first n rows: a
    split's first windows are its first few documents."""
    if n is None or n >= total:
        return np.arange(total)
    if n < 0:
        raise UsageError(f"the maximum number of evaluation windows must be >= 0, got {n}")
    n = int(n)
    starts = (np.arange(n + 1, dtype=np.int64) * total + n - 1) // n  # ceil(i * total / n), exact in integers
    return (starts[:-1] + starts[1:] - 1) // 2


def eval_windows(tokens: np.ndarray, context_length: int, max_windows: Optional[int] = None) -> np.ndarray:
    """Fixed evaluation windows of `tokens`, shape (n, context_length), int64 (a copy).

    All whole windows (len(tokens) // context_length), or `max_windows` of them spread evenly over
    the split (`spread_indices`) when given; the same windows every time they are asked for.
    """
    context_length = _check_context_length(context_length)
    total = len(tokens) // context_length
    rows = spread_indices(total, max_windows)
    if len(rows) == total:
        return np.array(tokens[: total * context_length], dtype=np.int64).reshape(total, context_length)
    view = tokens[: total * context_length].reshape(total, context_length)
    return np.array(view[rows], dtype=np.int64)

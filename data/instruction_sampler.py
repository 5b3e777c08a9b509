"""Padded batches of instruction examples, drawn from k tasks with mixture weights.

Same interface and stream semantics as the window sampler (`data.sampler.MixtureSampler`):
`set_weights`, `weights`, `next_batch(exact=None)`, `state_dict`, `load_state_dict`; the batch
composition (which task each row comes from) and the per-task order (a seeded permutation of its
training examples with a cursor, reshuffled at each new epoch) come from `data.composition`, which
reproduces MixtureSampler's rules exactly. Changing the mixture rebuilds nothing.

A batch is a dict of numpy arrays (what `trainer.loop.Trainer._batch` accepts):
  input_ids (B, W) int64, right-padded with the pad id (= EOS) to W = the longest example in the
  batch (not to the context length); attention_mask (B, W) 1 on tokens, 0 on padding; labels (B, W)
  the token id where the loss counts and -100 elsewhere: on the prompt and on padding (answer-only,
  in training as in evaluation), or only on padding with `train_on_prompt` (the paper's training
  loss, without its padding dilution); group_ids (B,) task index into `groups`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from data.bundle import IGNORE
from data.composition import BatchComposer, ComposedSampler, EpochOrder
from data.shards import spread_indices
from errors import UsageError


@dataclass
class Examples:
    """Tokenized examples of one task split: example i is ids[start[i]:start[i]+length[i]] and its
    answer begins at token answer[i] (>= 1, so the first answer token has context)."""

    ids: np.ndarray
    start: np.ndarray
    length: np.ndarray
    answer: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


def select_examples(ids, starts, answer_start, rows, context_length: int, truncate_left: bool):
    """(Examples of `rows`, dropped count). An example longer than `context_length` tokens is dropped,
    or with `truncate_left` cut from the left (prompt first) when its answer still fits after at
    least one prompt token; an example with no answer token is always dropped."""
    rows = np.asarray(rows, dtype=np.int64)
    start = starts[rows].copy()
    length = starts[rows + 1] - starts[rows]
    answer = answer_start[rows].copy()
    keep = (answer >= 1) & (answer < length)
    over = np.maximum(length - context_length, 0)
    if truncate_left:
        cut = np.where(answer - over >= 1, over, 0)
        keep &= (length - cut) <= context_length
        start, length, answer = start + cut, length - cut, answer - cut
    else:
        keep &= over == 0
    return Examples(ids, start[keep], length[keep], answer[keep]), int((~keep).sum())


def pad_rows(parts: list, pad_id: int, train_on_prompt: bool = False) -> dict:
    """Right-padded (n, W) arrays for [(token ids 1-D, answer start)], W = the longest part."""
    width = max(len(p) for p, _ in parts)
    n = len(parts)
    input_ids = np.full((n, width), pad_id, dtype=np.int64)
    labels = np.full((n, width), IGNORE, dtype=np.int64)
    mask = np.zeros((n, width), dtype=np.int64)
    for i, (tokens, answer) in enumerate(parts):
        m = len(tokens)
        input_ids[i, :m] = tokens
        mask[i, :m] = 1
        first = 0 if train_on_prompt else int(answer)
        labels[i, first:m] = tokens[first:]
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}


def _row(ex: Examples, i: int):
    s = int(ex.start[i])
    return ex.ids[s:s + int(ex.length[i])], int(ex.answer[i])


def eval_arrays(ex: Examples, max_rows: Optional[int], pad_id: int) -> dict:
    """`max_rows` examples spread over the split (all when None; `data.shards.spread_indices`),
    right-padded, answer-only labels."""
    return pad_rows([_row(ex, int(i)) for i in spread_indices(len(ex), max_rows)], pad_id)


class InstructionSampler(ComposedSampler):
    """Draws padded batches from ordered `tasks` {group: Examples} (their training split).

    batch_size in examples; `seed` a non-negative int (the run's --selection_seed); `weights`
    (length k, any positive scale) defaults to uniform; `pad_id` the tokenizer's EOS id.
    """

    def __init__(self, tasks: dict, batch_size: int, seed: int, sampling: str = "exact", weights=None,
                 pad_id: int = 0, train_on_prompt: bool = False):
        for group, ex in tasks.items():
            if len(ex) == 0:
                raise UsageError(f"task {group} has no training example; give it more instances")
        self.tasks = dict(tasks)
        self.groups = list(tasks)
        self.k = len(self.groups)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.pad_id = int(pad_id)
        self.train_on_prompt = bool(train_on_prompt)
        self.num_examples = {g: len(ex) for g, ex in self.tasks.items()}
        self._composer = BatchComposer(self.groups, batch_size, seed, sampling, weights)
        self._order = EpochOrder(self.num_examples, seed)
        self._drawn = np.zeros(self.k, dtype=np.int64)

    def next_batch(self, exact: Optional[bool] = None) -> dict:
        """One batch (see the module docstring); exact=True forces the exact composition."""
        gids, counts = self._composer.next(exact)
        parts = [None] * self.batch_size
        for j in np.flatnonzero(counts):
            ex = self.tasks[self.groups[j]]
            for pos, i in zip(np.flatnonzero(gids == j), self._order.take(int(j), int(counts[j]))):
                parts[pos] = _row(ex, int(i))
        self._drawn += counts
        batch = pad_rows(parts, self.pad_id, self.train_on_prompt)
        batch["group_ids"] = gids
        return batch

    @property
    def examples_drawn(self) -> dict:
        return self._drawn_by_group()


    def state_dict(self) -> dict:
        """JSON-serializable; `load_state_dict` resumes the identical stream."""
        return {"version": 1, "kind": "instruction", "seed": self.seed, "batch_size": self.batch_size,
                "sampling": self.sampling, "groups": list(self.groups), "num_examples": dict(self.num_examples),
                "examples_drawn": self.examples_drawn, **self._order.state_dict(), **self._composer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        checks = (("groups", self.groups), ("seed", self.seed), ("batch_size", self.batch_size),
                  ("num_examples", self.num_examples))
        self._load_mixture_state(state, checks, "tasks, --slice_list, --selection_seed, batch size, "
                                 "--context_length and split flags", "examples_drawn")

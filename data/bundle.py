"""What the trainer receives from the data, whatever the task (token shards or instruction examples), and
where prepared data is cached.

One batch shape everywhere: a mapping of equal-length (n, L) int64 arrays `input_ids` and `labels`
(-100 = not scored), `attention_mask` for padded examples only, and `group_ids` (n,) for training and
validation batches. Samplers' `next_batch`, evaluation sources and the validation batch all return it.
"""
import os
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

IGNORE = -100  # label of a position that is not scored


def cache_root() -> str:
    """$AIOLI_CACHE_DIR, else ~/.cache/aioli: prepared shards and tokenized instruction tasks."""
    return os.environ.get("AIOLI_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "aioli")


@dataclass
class DataBundle:
    """What the trainer needs from the data, whatever the task.

    make_sampler(weights) -> a sampler with `set_weights`, `weights`, `next_batch(exact)`,
        `state_dict`, `load_state_dict` (data.sampler.MixtureSampler for token shards);
    eval_source(split, group, max_rows) -> fixed evaluation rows as a batch mapping without group_ids
        (max_rows spread over the split; None = all).
    tokenizer_file: the tokenizer.json the data was made with, when it is on this machine (--save_model
        puts it beside the model); None otherwise.
    """

    groups: list
    vocab_size: Optional[int]
    make_sampler: Callable
    eval_source: Callable
    info: dict
    tokenizer_file: Optional[str] = None


def gather_rows(sources: list, picks: list) -> dict:
    """One batch of rows picked from several evaluation sources (one per group): picks = [(source
    index, row)]. Padded sources (with `attention_mask`) are cut to their real length and right-padded to
    the longest pick: padding gets id 0, mask 0 and label -100. Where every source's `labels` is its
    `input_ids` (token windows), the batch's are one array too, so it is built and copied to a device once."""
    masked = "attention_mask" in sources[0]
    lengths = [int(sources[g]["attention_mask"][r].sum()) if masked else sources[g]["input_ids"].shape[1]
               for g, r in picks]
    width = max(lengths)
    shared = not masked and all(source["labels"] is source["input_ids"] for source in sources)
    out = {"input_ids": np.zeros((len(picks), width), np.int64)}
    if not shared:
        out["labels"] = np.full((len(picks), width), IGNORE)
    if masked:
        out["attention_mask"] = np.zeros((len(picks), width), np.int64)
    for i, ((g, r), n) in enumerate(zip(picks, lengths)):
        for key in out:
            out[key][i, :n] = sources[g][key][r, :n]
    if shared:
        out["labels"] = out["input_ids"]
    return out


def validation_batch(sources: list, n: int, seed: int, step: int) -> dict:
    """n validation rows stratified over the groups (round-robin from group `step mod k`), each row drawn
    by a generator seeded from (seed, step): DoGE's validation target. sources: each group's val rows."""
    rng = np.random.default_rng([seed, 7919, step])
    gids = [(i + step) % len(sources) for i in range(n)]
    picks = [(g, int(rng.integers(len(sources[g]["input_ids"])))) for g in gids]
    batch = gather_rows(sources, picks)
    batch["group_ids"] = np.asarray(gids, dtype=np.int64)
    return batch

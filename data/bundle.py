"""What the trainer receives from the data, whatever the task (token shards or instruction examples), and
where prepared data is cached."""
import os
from dataclasses import dataclass
from typing import Callable, Optional


def cache_root() -> str:
    """$AIOLI_CACHE_DIR, else ~/.cache/aioli: prepared shards and tokenized instruction tasks."""
    return os.environ.get("AIOLI_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "aioli")


@dataclass
class DataBundle:
    """What the trainer needs from the data, whatever the task.

    make_sampler(weights) -> a sampler with `set_weights`, `weights`, `next_batch(exact)`,
        `state_dict`, `load_state_dict` (data.sampler.MixtureSampler for token shards);
    eval_source(split, group, max_rows) -> fixed evaluation rows (see trainer.evaluation.Evaluator).
    """

    groups: list
    vocab_size: Optional[int]
    make_sampler: Callable
    eval_source: Callable
    info: dict

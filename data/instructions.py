"""`--task_name instruction`: Natural Instructions tasks as the data groups of a run (one task, one group).

- Pieces: `data.ni_tasks` (task files, splits, text template, tokenization, cache) and
  `data.instruction_sampler` (padded batches with answer-only labels); this module wires them into a
  `data.bundle.DataBundle`.
- Tokenizer: --tokenizer, else the model's own; pad id = EOS. Cache: --instruction_cache_dir, else
  $AIOLI_CACHE_DIR/instructions/<hash of tokenizer, split flags and template>; one cache serves every
  --context_length (applied when loading). Details: docs/data.md.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Optional

from data import ni_tasks
from data.bundle import DataBundle, cache_root
from data.instruction_sampler import InstructionSampler, eval_arrays, select_examples
from data.tokenization import data_tokenizer_file, eos_id, load_tokenizer, vocab_size
from errors import UsageError
from options import option


@dataclass(frozen=True)
class InstructionOptions:
    """With --task_name instruction: --train_data_dir is the natural-instructions checkout (or its tasks/
    folder); --slice_list takes short names (abductivenli boolq hellaswag mathqa piqa semeval squad sst2
    xsum, the default) or task file names without .json."""

    instruction_val_size: int = option(100, "val examples per task (fewer for a task with under 2x(val+test) "
                                       "instances)")
    instruction_test_size: int = option(100, "test examples per task (same rule)")
    instruction_split_seed: int = option(
        0, "seed of the val/test/train split and of the answer chosen among several outputs (independent of "
        "--selection_seed, so every run is evaluated on the same examples)")
    instruction_cache_dir: Optional[str] = option(
        None, "where splits (JSON) and tokenized examples (.npz) are cached (default: "
        "$AIOLI_CACHE_DIR/instructions/<hash of tokenizer and split flags>)")
    train_on_prompt: bool = option(False, "train on prompt and answer tokens (the paper's training loss, minus "
                                   "padding); default: answer tokens only. Evaluation always scores answer tokens "
                                   "only")
    truncate_left: bool = option(False, "cut examples longer than --context_length from the left (prompt first) "
                                 "instead of dropping them")


def load_tokenizer_for(spec, explicit: bool, model_name):
    """(tokenizers.Tokenizer, spec, sha256 of its serialisation) of tokenizer `spec` (a path or name)."""
    try:
        tok = load_tokenizer(spec)
    except UsageError as err:
        tok = _auto_tokenizer(spec)  # e.g. a model directory with only vocab.json/merges.txt
        if tok is None:
            if explicit:
                raise
            raise UsageError(f"--model {model_name}: no tokenizer found for it ({err}); pass --tokenizer "
                             "with a tokenizer.json or a local model directory") from None
    # padding/truncation settings saved with a tokenizer would change the ids we compute: off
    tok.no_padding()
    tok.no_truncation()
    return tok, spec, hashlib.sha256(tok.to_str().encode()).hexdigest()


def _auto_tokenizer(spec):
    if not os.path.isdir(str(spec)):
        return None
    try:
        from transformers import AutoTokenizer

        auto = AutoTokenizer.from_pretrained(spec, local_files_only=True, use_fast=True)
    except Exception:  # any loader failure means "no usable tokenizer here"; the caller says so
        return None
    return getattr(auto, "backend_tokenizer", None)


def _cache_dir(options: InstructionOptions, tokenizer_sha, seed, val_size, test_size) -> str:
    if options.instruction_cache_dir:
        return options.instruction_cache_dir
    key = json.dumps([ni_tasks.FORMAT_VERSION, tokenizer_sha, seed, val_size, test_size, ni_tasks.TEMPLATE])
    return os.path.join(cache_root(), "instructions", hashlib.sha256(key.encode()).hexdigest()[:12])


def load_tasks(data, k, options: InstructionOptions, tokenizer, tokenizer_sha):
    """([TaskData], task dir, cache dir) for the flags; every missing file is a UsageError."""
    val_size, test_size = int(options.instruction_val_size), int(options.instruction_test_size)
    seed = int(options.instruction_split_seed)
    for flag, value in (("--instruction_val_size", val_size), ("--instruction_test_size", test_size)):
        if value < 1:
            raise UsageError(f"{flag} {value}: must be at least 1 (methods and results need val and test examples)")
    task_dir = ni_tasks.resolve_task_dir(data.train_data_dir)
    default_used = not data.slice_list
    names = list(data.slice_list or ni_tasks.DEFAULT_SLICE_LIST)
    found = ni_tasks.resolve_tasks(task_dir, names, default_used)
    if k is not None and k != len(found):
        raise UsageError(f"--k {k} does not match the {len(found)} tasks of --slice_list")
    cache_dir = _cache_dir(options, tokenizer_sha, seed, val_size, test_size)
    tasks = [ni_tasks.load_or_build(group, stem, path, tokenizer, tokenizer_sha, cache_dir, seed, val_size, test_size)
             for group, stem, path in found]
    return tasks, task_dir, cache_dir


def build_instruction_data(data, *, k=None, batch_size, seed, model_name=None, tokenizer_spec=None,
                           options: InstructionOptions = InstructionOptions()):
    """The DataBundle of an instruction-task run (checks everything before the run directory exists).
    data: the data flags (train_data_dir, slice_list, context_length, sampling, tokenizer); k, batch_size,
    seed (--selection_seed), model_name: the run's; tokenizer_spec: the tokenizer to use (the trainer
    passes --tokenizer or the model's own; default --tokenizer)."""
    spec = tokenizer_spec or data.tokenizer
    if not spec:
        raise UsageError("--task_name instruction: pass --tokenizer (a tokenizer.json or a model directory)")
    tokenizer, spec, tokenizer_sha = load_tokenizer_for(spec, bool(data.tokenizer), model_name)
    pad = eos_id(tokenizer)
    tasks, task_dir, cache_dir = load_tasks(data, k, options, tokenizer, tokenizer_sha)
    L = data.context_length
    truncate_left = options.truncate_left
    splits, sizes, dropped = {}, {}, {}
    for t in tasks:
        splits[t.group] = {}
        for split in ("train", "val", "test"):
            ex, n_drop = select_examples(t.ids, t.starts, t.answer_start, t.split[split], L, truncate_left)
            if len(ex) == 0:
                raise UsageError(f"task {t.group}: none of its {len(t.split[split])} {split} examples fits "
                                 f"--context_length {L}; raise --context_length or pass --truncate_left")
            splits[t.group][split] = ex
            if n_drop:
                dropped.setdefault(t.group, {})[split] = n_drop
        sizes[t.group] = {s: len(e) for s, e in splits[t.group].items()}
    _report(tasks, sizes, dropped, L, truncate_left, cache_dir)
    groups = [t.group for t in tasks]
    train_on_prompt = options.train_on_prompt

    def make_sampler(weights):
        return InstructionSampler({g: splits[g]["train"] for g in groups}, batch_size, seed,
                                  sampling=data.sampling, weights=weights, pad_id=pad,
                                  train_on_prompt=train_on_prompt)

    def eval_source(split, group, max_rows):
        return eval_arrays(splits[group][split], max_rows, pad)

    info = {"task_dir": os.path.abspath(task_dir), "task_files": {t.group: t.meta["task_file"] for t in tasks},
            "tokenizer": str(spec), "tokenizer_sha256": tokenizer_sha, "vocab_size": vocab_size(tokenizer),
            "pad_id": pad, "cache_dir": os.path.abspath(cache_dir), "template": ni_tasks.TEMPLATE,
            "examples": sizes, "dropped_too_long": dropped,
            "skipped_no_output": {t.group: t.meta["skipped_no_output"] for t in tasks},
            "loss_on": "prompt and answer" if train_on_prompt else "answer only"}
    return DataBundle(groups, vocab_size(tokenizer), make_sampler, eval_source, info, data_tokenizer_file(spec))


def _report(tasks, sizes, dropped, L, truncate_left, cache_dir):
    """One line per kind of surprise (small tasks, long examples), not one per example."""
    print(f"instruction tasks ({len(tasks)}; cache {cache_dir}): "
          + ", ".join(f"{g} {s['train']}/{s['val']}/{s['test']}" for g, s in sizes.items())
          + " train/val/test examples", flush=True)
    small = [t for t in tasks if t.meta["sizes_reduced"]]
    if small:
        print(f"note: {len(small)} task(s) have fewer than 2x(val+test) instances, so their val/test splits "
              "were shrunk to keep half for training: "
              + ", ".join(f"{t.group} ({t.meta['n_usable']} instances: {len(t.split['val'])} val, "
                          f"{len(t.split['test'])} test)" for t in small), flush=True)
    if dropped:
        what = "whose answer cannot fit" if truncate_left else f"longer than --context_length {L}"
        print(f"note: dropped examples {what}: "
              + ", ".join(f"{g} " + "/".join(f"{n} {s}" for s, n in d.items()) for g, d in dropped.items()),
              flush=True)

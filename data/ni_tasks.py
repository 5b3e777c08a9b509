"""Natural Instructions task files -> fixed splits and tokenized examples (cached, never pickled).

- Example text: prompt = definition + "\\n\\nInput: " + input + "\\nOutput:", answer = " " + output.
- Prompt and answer are tokenized together; the first answer token is the first token whose character
  span ends after the prompt (a straddling token is scored).
- Splits per task from (--instruction_split_seed, file name): val, test, then train; identical for every
  --selection_seed. Cache: `<file>.split.json` + `<file>.tokens.npz` (allow_pickle=False), rebuilt when
  their settings or the source file change. In full: docs/data.md.
"""
from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import dataclass

import numpy as np

from errors import UsageError

# The paper's nine tasks; the default --slice_list is their
# short names in sorted order, as the paper used them.
PAPER_TASKS = {
    "squad": "task075_squad1.1_answer_generation",
    "mathqa": "task1420_mathqa_general",
    "xsum": "task1290_xsum_summarization",
    "sst2": "task363_sst2_polarity_classification",
    "abductivenli": "task067_abductivenli_answer_generation",
    "hellaswag": "task1389_hellaswag_completion",
    "semeval": "task295_semeval_2020_task4_commonsense_reasoning",
    "piqa": "task080_piqa_answer_generation",
    "boolq": "task380_boolq_yes_no_question",
}
DEFAULT_SLICE_LIST = sorted(PAPER_TASKS)

INPUT_SEP = "\n\nInput: "
OUTPUT_SEP = "\nOutput:"
ANSWER_PREFIX = " "
TEMPLATE = f"{{definition}}{INPUT_SEP}{{input}}{OUTPUT_SEP}{ANSWER_PREFIX}{{output}}"
FORMAT_VERSION = 1  # bump when the text template, the boundary rule or the cache layout changes


def build_prompt(definition: str, text: str) -> str:
    return f"{definition.strip()}{INPUT_SEP}{text.strip()}{OUTPUT_SEP}"


def build_answer(output: str) -> str:
    return ANSWER_PREFIX + output.strip()


# -- finding task files ---------------------------------------------------------------------------
def resolve_task_dir(path) -> str:
    """The folder holding the task files: `path` itself or its `tasks/` subfolder."""
    if not path:
        raise UsageError("--task_name instruction needs --train_data_dir: the natural-instructions checkout "
                         "(or its tasks/ folder) holding the task JSON files")
    if not os.path.isdir(path):
        raise UsageError(f"--train_data_dir {path}: no such directory; pass the natural-instructions checkout "
                         "or its tasks/ folder")
    sub = os.path.join(path, "tasks")
    return sub if os.path.isdir(sub) else path


def resolve_tasks(task_dir: str, names, default_used: bool) -> list:
    """[(group name, file stem, path)] for --slice_list; UsageError naming what is missing."""
    found, missing, seen = [], [], {}
    for name in names:
        stem = PAPER_TASKS.get(name, name[:-5] if name.endswith(".json") else name)
        group = name[:-5] if name.endswith(".json") else name
        path = os.path.join(task_dir, stem + ".json")
        if stem in seen:
            raise UsageError(f"--slice_list names task file {stem}.json twice ({seen[stem]} and {name}); "
                             "list each task once")
        seen[stem] = name
        if os.path.isfile(path):
            found.append((group, stem, path))
        else:
            missing.append((name, stem, path))
    if missing and default_used:
        have = [group for group, _, _ in found]
        hint = f"e.g. --slice_list {' '.join(have)}" if have else "naming task files that exist there"
        raise UsageError(
            f"the default --slice_list (the paper's 9 tasks) needs task files missing from {task_dir}: "
            + ", ".join(f"{name} ({stem}.json)" for name, stem, _ in missing)
            + f"; pass --slice_list with the tasks you have, {hint}")
    if missing:
        name, stem, path = missing[0]
        more = f" (also missing: {', '.join(n for n, _, _ in missing[1:])})" if len(missing) > 1 else ""
        raise UsageError(f"--slice_list {name}: task file {stem}.json not found in {task_dir} (looked for "
                         f"{path}){more}; use a short name ({', '.join(DEFAULT_SLICE_LIST)}) or a task file "
                         "name without .json")
    return found


def read_task(path: str):
    """(definition, [(input, [outputs])]) of one task file, tolerant of both NI schemas."""
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except ValueError as err:
        raise UsageError(f"{path}: not a valid JSON task file ({err}); re-download it") from None
    if not isinstance(obj, dict) or "Definition" not in obj or not isinstance(obj.get("Instances"), list):
        raise UsageError(f"{path}: not a Natural Instructions task file (needs 'Definition' and 'Instances')")
    definition = obj["Definition"]
    if isinstance(definition, list):  # newer schema: a list, of which the paper used element 0
        definition = definition[0] if definition else ""
    if not isinstance(definition, str):
        raise UsageError(f"{path}: 'Definition' must be a string or a list of strings")
    instances = []
    for i, inst in enumerate(obj["Instances"]):
        if not isinstance(inst, dict) or not isinstance(inst.get("input"), str):
            raise UsageError(f"{path}: instance {i} has no 'input' string")
        outputs = inst.get("output", [])
        outputs = [outputs] if isinstance(outputs, str) else outputs if isinstance(outputs, list) else []
        instances.append((inst["input"], [o for o in outputs if isinstance(o, str) and o.strip()]))
    return definition, instances


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- splits ---------------------------------------------------------------------------------------
def split_sizes(n: int, val_size: int, test_size: int):
    """(val, test, reduced): the requested sizes, or proportionally smaller ones (at least 1 each)
    when fewer than 2*(val+test) instances are usable, so that at least half remain for training."""
    if n < 3:
        raise ValueError("fewer than 3 usable instances")
    if n >= 2 * (val_size + test_size):
        return val_size, test_size, False
    scale = n / (2.0 * (val_size + test_size))
    return max(1, int(val_size * scale)), max(1, int(test_size * scale)), True


def _rng(seed: int, stream: int, name: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), stream, zlib.crc32(name.encode())])))


def make_split(stem: str, n_usable: int, val_size: int, test_size: int, seed: int) -> dict:
    """{"val", "test", "train"}: positions into the usable instances (disjoint, covering all)."""
    val, test, reduced = split_sizes(n_usable, val_size, test_size)
    perm = _rng(seed, 0, stem).permutation(n_usable).tolist()
    return {"val": perm[:val], "test": perm[val:val + test], "train": perm[val + test:], "reduced": reduced}


# -- tokenization ---------------------------------------------------------------------------------
def tokenize_pairs(tokenizer, prompts: list, answers: list):
    """(flat int32 ids, starts (n+1,) int64, answer_start (n,) int64) of prompt+answer tokenized
    together; answer_start = the first token ending after the prompt (see the module docstring)."""
    encodings = tokenizer.encode_batch([p + a for p, a in zip(prompts, answers)])
    lengths = np.array([len(e.ids) for e in encodings], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.fromiter((t for e in encodings for t in e.ids), dtype=np.int64, count=int(starts[-1]))
    answer_start = np.empty(len(encodings), dtype=np.int64)
    for i, (enc, prompt) in enumerate(zip(encodings, prompts)):
        ends = np.array([end for _, end in enc.offsets], dtype=np.int64)
        after = np.flatnonzero(ends > len(prompt))
        answer_start[i] = after[0] if len(after) else len(ends)  # no answer token: dropped later
    if ids.size and ids.max() > np.iinfo(np.int32).max:
        raise UsageError("token ids do not fit in int32; this tokenizer is not supported")
    return ids.astype(np.int32), starts, answer_start


@dataclass
class TaskData:
    """One task after splitting and tokenizing: `split` holds example indices (into the arrays)."""

    group: str
    stem: str
    ids: np.ndarray
    starts: np.ndarray
    answer_start: np.ndarray
    split: dict
    meta: dict


def _atomic_write(path: str, write) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        write(fh)
    os.replace(tmp, path)


def load_or_build(group: str, stem: str, path: str, tokenizer, tokenizer_id: str, cache_dir: str,
                  seed: int, val_size: int, test_size: int) -> TaskData:
    """The split and tokens of one task, from the cache when its recorded settings still match."""
    key = {"format": FORMAT_VERSION, "source_sha256": file_sha256(path), "tokenizer": tokenizer_id,
           "split_seed": int(seed), "val_size": int(val_size), "test_size": int(test_size), "template": TEMPLATE}
    split_path = os.path.join(cache_dir, f"{stem}.split.json")
    tokens_path = os.path.join(cache_dir, f"{stem}.tokens.npz")
    try:
        with open(split_path) as fh:
            meta = json.load(fh)
        if meta.get("key") == key:
            with np.load(tokens_path, allow_pickle=False) as z:
                arrays = {name: z[name] for name in ("ids", "starts", "answer_start")}
            if len(arrays["answer_start"]) == meta["n_usable"]:
                return TaskData(group, stem, split=meta["split"], meta=meta, **arrays)
    except (OSError, ValueError, KeyError):
        pass  # absent, stale or damaged: rebuild
    definition, instances = read_task(path)
    usable = [i for i, (_, outputs) in enumerate(instances) if outputs]
    try:
        split = make_split(stem, len(usable), val_size, test_size, seed)
    except ValueError:
        raise UsageError(f"--slice_list {group}: {path} has {len(usable)} usable instances (with a non-empty "
                         "output); a task needs at least 3 (val, test, train)") from None
    # one draw per instance, in file order: the choice of answer is fixed with the split
    choice_rng = _rng(seed, 2, stem)
    choices = [int(choice_rng.integers(len(instances[i][1]))) for i in usable]
    prompts = [build_prompt(definition, instances[i][0]) for i in usable]
    answers = [build_answer(instances[i][1][c]) for i, c in zip(usable, choices)]
    ids, starts, answer_start = tokenize_pairs(tokenizer, prompts, answers)
    reduced = split.pop("reduced")
    meta = {"key": key, "task_file": os.path.abspath(path), "group": group, "n_instances": len(instances),
            "n_usable": len(usable), "skipped_no_output": len(instances) - len(usable),
            "sizes_reduced": reduced, "instance_index": usable, "answer_choice": choices,
            "split": split}  # split: positions into instance_index (and into the token arrays)
    os.makedirs(cache_dir, exist_ok=True)
    # tokens first, split file last: a present split file with a matching key means a complete entry
    _atomic_write(tokens_path, lambda fh: np.savez(fh, ids=ids, starts=starts, answer_start=answer_start))
    _atomic_write(split_path, lambda fh: fh.write(json.dumps(meta).encode()))
    return TaskData(group, stem, ids, starts, answer_start, split, meta)

"""Turn the data flags into opened shard sets: prepared shards are used as they are; raw data (the
demo corpus, a SlimPajama tree, .jsonl files, a saved HF dataset) is prepared once into a cache keyed
by the input path and tokenizer (later runs find it by fingerprint and skip the work)."""
import hashlib
import os
from dataclasses import dataclass
from typing import Optional

from data.bundle import DataBundle, cache_root
from data.demo import CORPUS_DIR, TOKENIZER_PATH
from data.instructions import build_instruction_data
from data.prepare import detect_layout, prepare_corpus
from data.sampler import MixtureSampler
from data.shards import ShardSet
from data.tokenization import data_tokenizer_file, resolve_tokenizer_file
from errors import UsageError
from options import option, require_positive
from trainer.models import bundled_config_name, is_tiny


@dataclass(frozen=True)
class DataOptions:
    """The data groups, where they come from and how they are cut into windows and evaluated."""

    task_name: str = option("slimpj", "slimpj: token shards of text groups; instruction: Natural Instructions tasks",
                            choices=("slimpj", "instruction"))
    train_data_dir: Optional[str] = option(
        None, "prepared shards (meta.json or the paper's <group>/train.bin layout) or raw data (SlimPajama "
        "jsonl.zst tree, .jsonl files, a saved HF dataset), prepared once into a cache. Default: the embedded "
        "demo corpus")
    val_data_dir: Optional[tuple[str, ...]] = option(
        None, "where <group>/val.bin and test.bin live (default: --train_data_dir); only the first value is "
        "used, as in the paper")
    slice_list: Optional[tuple[str, ...]] = option(None, "groups to mix (default: every group of the data, in "
                                                   "its order)")
    tokenizer: Optional[str] = option(None, "tokenizer name or path used when raw data must be prepared "
                                      "(default: the model's own; the bundled demo tokenizer for the tiny configs)")
    context_length: Optional[int] = option(None, "tokens per training window (paper scripts: 2048; default "
                                           "1024, or 256 for the demo)")
    sampling: str = option("exact", "batch composition: exact largest-remainder counts (default) or i.i.d. "
                           "multinomial draws as in the paper's code", choices=("exact", "multinomial"))
    max_eval_samples: Optional[int] = option(
        None, "validation: N windows per group spread evenly over its val split (fixed for the run, the same "
        "for every method; default: all)")
    max_test_samples: Optional[int] = option(
        None, "final test metric: N windows per group spread over the test split (default: the whole split)")
    num_proc: Optional[int] = option(None, "processes for data preparation")
    skip_damaged_files: bool = option(False, "raw data: keep the readable start of a truncated or corrupt .zst "
                                      "file instead of stopping (the loss is recorded in the cache's meta.json)")

    def check(self):
        if self.task_name == "instruction" and self.train_data_dir is None:
            raise UsageError("--task_name instruction needs --train_data_dir: the natural-instructions repository "
                             "or its tasks/ folder")
        require_positive(self, "context_length")
        if self.context_length < 2:
            raise UsageError("--context_length: at least 2 tokens")
        for flag in ("max_eval_samples", "max_test_samples"):
            if getattr(self, flag) is not None and getattr(self, flag) <= 0:
                raise UsageError(f"--{flag}: must be positive (omit it to evaluate all windows)")


def default_tokenizer(cfg) -> str:
    """--tokenizer, else the model's own (the bundled demo tokenizer for the tiny configs). A model whose
    tokenizer cannot be found is an error about --model, the flag the user gave."""
    model_name = cfg.model.model_name
    if cfg.data.tokenizer:
        return cfg.data.tokenizer
    if is_tiny(model_name):
        return TOKENIZER_PATH
    # every Pythia model shares the GPT-NeoX tokenizer (through the Hugging Face cache: hub.py)
    bundled = bundled_config_name(model_name) is not None
    spec = "EleutherAI/pythia-160m" if bundled else model_name
    try:
        resolve_tokenizer_file(spec)
    except UsageError:
        looks_like_path = model_name.startswith((".", os.sep, "~")) or model_name.count("/") > 1
        if bundled:
            where = "its tokenizer is neither in the Hugging Face cache nor available from the Hub" + (
                f" (every Pythia model uses that of {spec})" if spec != model_name else "")
        elif looks_like_path and not os.path.exists(model_name):
            where = "no such folder"
        else:
            where = "no tokenizer.json in it, nor for it in the Hugging Face cache or on the Hub"
        raise UsageError(f"--model {model_name}: {where}; pass --tokenizer (a tokenizer.json or a folder holding "
                         "one), an existing model folder or a cached model id, or --model tiny") from None
    return spec


def open_data(path: str, cfg, flag: str):
    """A ShardSet for `path` (preparing raw input into the cache first)."""
    if not os.path.exists(path):
        raise UsageError(f"{flag} {path}: no such file or directory")
    layout = detect_layout(path)
    if layout != "shards":
        tokenizer = default_tokenizer(cfg)
        key = hashlib.sha256(f"{os.path.abspath(path)}\0{tokenizer}".encode()).hexdigest()[:12]
        name = os.path.basename(os.path.normpath(path)) or "data"
        out = os.path.join(cache_root(), "shards", f"{name}-{key}")
        if not os.path.exists(os.path.join(out, "meta.json")):
            print(f"preparing {layout} data from {path} into {out} (once; later runs reuse it)", flush=True)
        prepare_corpus(path, out, tokenizer, num_proc=cfg.data.num_proc or min(4, os.cpu_count() or 1),
                       overwrite=True, progress=not cfg.output.no_progress,
                       skip_damaged=cfg.data.skip_damaged_files)
        path = out
    return ShardSet.open(path, groups=list(cfg.data.slice_list) if cfg.data.slice_list else None)


def open_train_and_eval(cfg):
    """(train ShardSet, eval ShardSet, groups). The paper reads val/test from --val_data_dir[0]."""
    data, k = cfg.data, cfg.mixture.k
    train = open_data(data.train_data_dir or CORPUS_DIR, cfg, "--train_data_dir")
    evals = open_data(data.val_data_dir[0], cfg, "--val_data_dir") if data.val_data_dir else train
    groups = list(train.groups)
    if k is not None and k != len(groups):
        raise UsageError(f"--k {k} does not match the {len(groups)} groups of --slice_list ({' '.join(groups)})")
    if train.vocab_size and evals.vocab_size and train.vocab_size != evals.vocab_size:
        raise UsageError("--train_data_dir and --val_data_dir were prepared with different tokenizers "
                         f"(vocabularies {train.vocab_size} and {evals.vocab_size}); prepare both with the same one")
    return train, evals, groups


def build_data(cfg) -> DataBundle:
    """Open (and if needed prepare) the data of a RunConfig; every check happens here, before the run
    directory exists."""
    if cfg.data.task_name == "instruction":  # Natural Instructions tasks: data/instructions.py
        return build_instruction_data(cfg.data, k=cfg.mixture.k, batch_size=cfg.train.batch_size,
                                      seed=cfg.train.selection_seed, model_name=cfg.model.model_name,
                                      tokenizer_spec=default_tokenizer(cfg), options=cfg.instruction)
    train, evals, groups = open_train_and_eval(cfg)
    L = cfg.data.context_length
    sources = train.sources("train", L)
    for group in groups:  # fail now, with the file's name, rather than at the first evaluation
        for split in ("val", "test"):
            evals.num_windows(group, split, L)

    def make_sampler(weights):
        return MixtureSampler(sources, L, cfg.train.batch_size, cfg.train.selection_seed,
                              sampling=cfg.data.sampling, weights=weights)

    def eval_source(split, group, max_rows):
        windows = evals.windows(group, split, L, max_rows)
        return {"input_ids": windows, "labels": windows}

    info = {"train_dir": train.root, "val_dir": evals.root, "vocab_size": train.vocab_size,
            "dtype": str(train.dtype)}
    meta = train.meta or {}
    tokenizer = data_tokenizer_file(meta.get("tokenizer"), meta.get("tokenizer_sha256"))
    return DataBundle(groups, train.vocab_size, make_sampler, eval_source, info, tokenizer)

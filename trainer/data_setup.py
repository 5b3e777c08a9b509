"""Turn the data flags into opened shard sets: prepared shards are used as they are; raw data (the
demo corpus, a SlimPajama tree, .jsonl files, a saved HF dataset) is prepared once into a cache keyed
by the input path and tokenizer (later runs find it by fingerprint and skip the work)."""
import hashlib
import os

from data.bundle import DataBundle, cache_root
from data.demo import CORPUS_DIR, TOKENIZER_PATH
from data.instructions import InstructionOptions, build_instruction_data
from data.prepare import detect_layout, prepare_corpus
from data.sampler import MixtureSampler
from data.shards import ShardSet
from errors import UsageError
from options import from_namespace
from trainer.models import bundled_config_name, is_tiny


def default_tokenizer(args) -> str:
    if args.tokenizer:
        return args.tokenizer
    if is_tiny(args.model_name):
        return TOKENIZER_PATH
    if bundled_config_name(args.model_name) is not None:
        # every Pythia model shares the GPT-NeoX tokenizer; found only if it is in the local HF cache
        return "EleutherAI/pythia-160m"
    return args.model_name


def open_data(path: str, args, flag: str):
    """A ShardSet for `path` (preparing raw input into the cache first)."""
    if not os.path.exists(path):
        raise UsageError(f"{flag} {path}: no such file or directory")
    layout = detect_layout(path)
    if layout != "shards":
        tokenizer = default_tokenizer(args)
        key = hashlib.sha256(f"{os.path.abspath(path)}\0{tokenizer}".encode()).hexdigest()[:12]
        name = os.path.basename(os.path.normpath(path)) or "data"
        out = os.path.join(cache_root(), "shards", f"{name}-{key}")
        if not os.path.exists(os.path.join(out, "meta.json")):
            print(f"preparing {layout} data from {path} into {out} (once; later runs reuse it)", flush=True)
        prepare_corpus(path, out, tokenizer, num_proc=args.num_proc or min(4, os.cpu_count() or 1),
                       overwrite=True, progress=not args.no_progress)
        path = out
    return ShardSet.open(path, groups=args.slice_list)


def open_train_and_eval(args):
    """(train ShardSet, eval ShardSet, groups). The paper reads val/test from --val_data_dir[0]."""
    train_path = args.train_data_dir or CORPUS_DIR
    train = open_data(train_path, args, "--train_data_dir")
    if args.val_data_dir:
        evals = open_data(args.val_data_dir[0], args, "--val_data_dir")
    else:
        evals = train
    groups = list(train.groups)
    if args.k is not None and args.k != len(groups):
        raise UsageError(f"--k {args.k} does not match the {len(groups)} groups of --slice_list ({' '.join(groups)})")
    if train.vocab_size and evals.vocab_size and train.vocab_size != evals.vocab_size:
        raise UsageError("--train_data_dir and --val_data_dir were prepared with different tokenizers "
                         f"(vocabularies {train.vocab_size} and {evals.vocab_size}); prepare both with the same one")
    return train, evals, groups


def build_data(args) -> DataBundle:
    """Open (and if needed prepare) the data named by the flags; every check happens here, before
    the run directory exists."""
    if args.task_name == "instruction":  # Natural Instructions tasks: data/instructions.py
        return build_instruction_data(args, default_tokenizer(args), from_namespace(InstructionOptions, args))

    train, evals, groups = open_train_and_eval(args)
    L = args.context_length
    sources = train.sources("train", L)
    for group in groups:  # fail now, with the file's name, rather than at the first evaluation
        for split in ("val", "test"):
            evals.num_windows(group, split, L)

    def make_sampler(weights):
        return MixtureSampler(sources, L, args.batch_size, args.selection_seed, sampling=args.sampling,
                              weights=weights)

    def eval_source(split, group, max_rows):
        windows = evals.windows(group, split, L, max_rows)
        return {"input_ids": windows, "labels": windows}

    info = {"train_dir": train.root, "val_dir": evals.root, "vocab_size": train.vocab_size,
            "dtype": str(train.dtype)}
    return DataBundle(groups, train.vocab_size, make_sampler, eval_source, info)

"""Raw corpora -> per-group token shards: `python -m data.prepare --input RAW --output DIR --tokenizer TOK`.

Output (docs/formats.md): `<out>/<group>/{train,val,test}.bin`, flat token ids (uint16 when the vocabulary
fits, else uint32), every document followed by one EOS, and `<out>/meta.json` (token counts include the
EOS tokens). The input layouts and how each is split into train/val/test are described in `data.sources`.

Guarantees:
- bounded memory whatever the corpus size: documents are read, tokenized and appended in batches of about
  BATCH_DOCS documents / BATCH_BYTES bytes, with at most 2 * num_proc batches in flight;
- the output does not depend on `num_proc` (batches are written back in reading order);
- nothing half-written: shards go to `*.bin.tmp` files that are renamed only when everything succeeded,
  meta.json last; on any error they are removed;
- idempotent: a `meta.json` with the same fingerprint (input files' relative path, size and mtime_ns,
  tokenizer hash, dtype, split settings, group selection) makes preparation a no-op.
"""
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections import Counter, deque
from pathlib import Path

import numpy as np
from filelock import FileLock

from data import sharded
from data.groups import SLIMPAJAMA_GROUPS
from data.sources import HF_SHUFFLE_SEED, ReadStats, detect_layout, input_files, iter_documents
from data.tokenization import eos_id, load_tokenizer, resolve_tokenizer_file, tokenizer_sha256, vocab_size
from errors import OneLineArgumentParser, UsageError, exit_on_usage_error

__all__ = ["prepare_corpus", "detect_layout", "main"]

FORMAT, VERSION = "aioli-shards", 1
SPLITS = ("train", "val", "test")
BATCH_DOCS = 1000  # documents per tokenization batch
BATCH_BYTES = 4 << 20  # bytes of text per tokenization batch (bounds memory for long documents)

_WORKER = {}  # per-process tokenizer state, set once by _init_worker


def _init_worker(tokenizer_file: str, eos: int, dtype: str, single_thread: bool):
    if single_thread:  # worker processes are the parallelism; rayon threads on top would oversubscribe
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    _WORKER.update(tok=Tokenizer.from_file(tokenizer_file), eos=eos, dtype=np.dtype(dtype))


def _encode(batch):
    """[(key, texts)] -> [(key, token array with one EOS after each document, number of documents)]."""
    tok, eos, dtype = _WORKER["tok"], _WORKER["eos"], _WORKER["dtype"]
    out = []
    for key, texts in batch:
        ids = []
        for enc in tok.encode_batch_fast(texts, add_special_tokens=False):
            ids.extend(enc.ids)
            ids.append(eos)
        out.append((key, np.array(ids, dtype=dtype), len(texts)))
    return out


def _batches(docs):
    """Group (group, split, text, nbytes) documents into ([(key, texts)], text bytes) batches."""
    batch, ndocs, nbytes = {}, 0, 0
    for group, split, text, size in docs:
        batch.setdefault((group, split), []).append(text)
        ndocs, nbytes = ndocs + 1, nbytes + size
        if ndocs >= BATCH_DOCS or nbytes >= BATCH_BYTES:
            yield list(batch.items()), nbytes
            batch, ndocs, nbytes = {}, 0, 0
    if batch:
        yield list(batch.items()), nbytes


class _ShardWriter:
    """Appends token arrays to `<out>/<group>/<split>.bin.tmp`; commit() renames, discard() removes."""

    def __init__(self, out: Path):
        self.out, self.files, self.new_dirs = out, {}, []
        self.tokens, self.docs = Counter(), Counter()

    def tmp_path(self, key):
        return self.out / key[0] / f"{key[1]}.bin.tmp"

    def _file(self, key):
        """The open temporary file of `key`, created (with its group folder) on first use."""
        if key not in self.files:
            gdir = self.out / key[0]
            if not gdir.is_dir():
                gdir.mkdir(parents=True)
                self.new_dirs.append(gdir)
            self.files[key] = open(self.tmp_path(key), "wb")
        return self.files[key]

    def write(self, key, ids, ndocs):
        self._file(key).write(ids.tobytes())
        self.tokens[key] += len(ids)
        self.docs[key] += ndocs

    def close(self):
        for fh in self.files.values():
            if not fh.closed:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()

    def discard(self):
        for key, fh in self.files.items():
            fh.close()
            self.tmp_path(key).unlink(missing_ok=True)
        for gdir in reversed(self.new_dirs):
            if gdir.is_dir() and not any(gdir.iterdir()):
                gdir.rmdir()

    def append_file(self, key, path: Path, tokens: int, ndocs: int):
        """Append a prepared shard file (--merge), streamed: parts can be larger than memory."""
        with open(path, "rb") as src:
            shutil.copyfileobj(src, self._file(key), 1 << 24)
        self.tokens[key] += tokens
        self.docs[key] += ndocs

    def commit(self):
        for key in self.files:
            os.replace(self.tmp_path(key), self.out / key[0] / f"{key[1]}.bin")


def _existing_shards(out: Path) -> list[Path]:
    """Shard files (final, not .tmp) already in `out`, and its meta.json if any."""
    if not out.is_dir():
        return []
    found = [out / "meta.json"] if (out / "meta.json").exists() else []
    return found + [sub / f"{s}.bin" for sub in sorted(out.iterdir()) if sub.is_dir() for s in SPLITS
                    if (sub / f"{s}.bin").exists()]


def _read_meta(out: Path):
    try:
        with open(out / "meta.json") as fh:
            meta = json.load(fh)
        return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None
    except (OSError, ValueError):
        return None


def _shards_intact(meta, out: Path) -> bool:
    """Every shard that meta.json lists exists with size = tokens x itemsize."""
    try:
        itemsize = np.dtype(meta["dtype"]).itemsize
        # a part of a sharded preparation may have no tokens, and then no file, for a group's split
        files = [(out / g / f"{s}.bin", n) for g, counts in meta["groups"].items() for s, n in counts.items()]
        return all((n == 0 and not path.exists()) or path.stat().st_size == n * itemsize for path, n in files)
    except (OSError, KeyError, TypeError, AttributeError):
        return False


def _check_args(groups, num_proc, val_fraction, test_fraction, dtype, any_group=False):
    """The settings' checks; returns the groups without repeats. any_group: names come from --group_field."""
    if groups is not None:
        groups = list(dict.fromkeys(groups))  # drop repeats, keep order
        unknown = [] if any_group else [g for g in groups if g not in SLIMPAJAMA_GROUPS]
        if unknown or not groups:
            raise UsageError(f"--groups: unknown group(s) {', '.join(unknown) or '(none given)'}; valid "
                             f"groups are {', '.join(SLIMPAJAMA_GROUPS)}")
    if not isinstance(num_proc, int) or num_proc < 1:
        raise UsageError(f"--num_proc must be a positive integer (got {num_proc})")
    for flag, f in (("--val_fraction", val_fraction), ("--test_fraction", test_fraction)):
        if not 0 < f < 1:
            raise UsageError(f"{flag} must lie strictly between 0 and 1 (got {f})")
    if val_fraction + test_fraction >= 1:
        raise UsageError(f"--val_fraction + --test_fraction must be below 1 (got {val_fraction + test_fraction})")
    if dtype not in ("auto", "uint16", "uint32"):
        raise UsageError(f"--dtype must be auto, uint16 or uint32 (got {dtype})")
    return groups


def _empty_split_message(layout, group, split, ndocs, input_path, val_fraction, test_fraction):
    if layout == "jsonl":
        fix = {"val": f"raise --val_fraction (now {val_fraction})",
               "test": f"raise --test_fraction (now {test_fraction})",
               "train": "lower --val_fraction / --test_fraction"}[split]
        return f"group {group!r}: its {split} split is empty ({ndocs} documents in all); {fix}"
    if layout == "slimpajama":
        folder = {"train": "train", "val": "validation", "test": "test"}[split]
        return f"group {group!r} has no documents under {Path(input_path) / folder}; add some or drop the group"
    if layout == "hf_hub":
        return (f"group {group!r}: its {split} split is empty ({ndocs} documents in all) in the streamed dataset "
                f"{input_path}; drop the group (--groups) or use a dataset with documents of it in every split")
    source = "train" if split == "train" else "test"
    return (f"group {group!r}: its {split} split is empty ({ndocs} documents in all); the saved dataset's "
            f"{source!r} split needs {'1 document' if split == 'train' else '2 documents'} of it at least")


def prepare_corpus(input_path, output_dir, tokenizer_spec, **settings) -> dict:
    """Tokenize a raw corpus into `<output_dir>/<group>/{train,val,test}.bin` + meta.json; return the meta.

    Settings (keywords): groups (short names; None = every known group present in the input), num_proc,
    seed, val_fraction, test_fraction (these three: the jsonl layout only), strict, overwrite, progress
    (tqdm bar on a terminal plus a summary line), dtype ("auto": uint16 if the vocabulary fits, else
    uint32). Holds `<output_dir>.lock` throughout, so that runs started together on the same raw data
    prepare it once: the others wait, then find it prepared.
    """
    if os.path.isfile(output_dir):
        raise UsageError(f"--output {output_dir} is a file; pass a directory")
    parent = os.path.dirname(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    with FileLock(os.path.abspath(output_dir).rstrip(os.sep) + ".lock"):
        return _prepare_locked(input_path, output_dir, tokenizer_spec, **settings)


def _prepare_locked(input_path, output_dir, tokenizer_spec, *, groups=None, num_proc=1, seed=0,
                    val_fraction=0.05, test_fraction=0.05, strict=False, overwrite=False, progress=True,
                    dtype="auto", skip_damaged=False, shard=None, text_field=None, group_field=None) -> dict:
    """The phases: check the settings -> fingerprint the inputs -> reuse or refuse what the output holds ->
    tokenize into temporary shards -> check the groups and splits -> commit (meta.json last)."""
    t0 = time.perf_counter()
    fields = {"text": text_field or "text", "group": group_field}  # group None: SlimPajama's set names
    groups = _check_args(groups, num_proc, val_fraction, test_fraction, dtype, any_group=group_field is not None)
    layout = detect_layout(input_path)
    if (text_field or group_field) and layout != "hf_hub":
        raise UsageError("--text_field/--group_field: only for a streamed dataset (--input hf:NAME); other "
                         "layouts use SlimPajama's records (text, meta.redpajama_set_name)")
    if layout == "shards":
        raise UsageError(f"--input {input_path} already holds prepared shards; use it as the data directory "
                         "instead of preparing it again")
    tok_file = resolve_tokenizer_file(tokenizer_spec)
    tok = load_tokenizer(tokenizer_spec)
    eos, vocab = eos_id(tok), vocab_size(tok)
    if dtype == "uint16" and vocab > 65536:
        raise UsageError(f"--dtype uint16 cannot hold the tokenizer's {vocab} token ids (at most 65536); use "
                         "--dtype uint32 or auto")
    np_dtype = np.dtype(dtype if dtype != "auto" else ("uint16" if vocab <= 65536 else "uint32"))
    split_settings = {"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction,
                      "rule": {"jsonl": "hash", "slimpajama": "folders",
                               "hf_disk": f"test halves after shuffle(seed={HF_SHUFFLE_SEED})",
                               "hf_hub": "the dataset's splits (no validation: test halved by hash)"}[layout]}
    tok_sha = tokenizer_sha256(tokenizer_spec)
    files = [[rel, p.stat().st_size, p.stat().st_mtime_ns] for rel, p in input_files(layout, input_path)]
    if layout == "hf_hub":  # fingerprinted by its name (and a local folder's files): pin a Hub dataset by name
        if shard is not None:
            raise UsageError(f"--shard: a streamed dataset ({input_path}) is read whole on one machine; shard "
                             "local files instead")
        files.insert(0, [json.dumps({"input": str(input_path), "fields": fields}, sort_keys=True), None, None])
    fingerprint = _fingerprint(layout, files, tok_sha, np_dtype, split_settings, groups, skip_damaged)
    part = None
    if shard is not None:  # this machine's contiguous block of the input files (data/sharded.py)
        part = sharded.part_of(shard, layout, files, fingerprint, groups)
        files = [f for f in files if f[0] in set(part["files"])]
        fingerprint = part["fingerprint"]

    out = Path(output_dir)
    old, existing = _reuse_or_refuse(out, output_dir, fingerprint, overwrite)
    if old is not None:
        if progress:
            print(f"{out}: already prepared from these inputs and settings (meta.json fingerprint matches)")
        return old

    created_out = not out.exists()  # removed again on failure, so that a failed run leaves nothing
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*/*.bin.tmp"):  # left by a killed run: ours by name, never valid
        stale.unlink()
    stats, writer = ReadStats(), _ShardWriter(out)
    wanted = set(groups) if groups is not None else None
    docs = iter_documents(layout, input_path, wanted, seed=seed, val_fraction=val_fraction,
                          test_fraction=test_fraction, strict=strict, stats=stats, skip_damaged=skip_damaged,
                          only=None if part is None else set(part["files"]), fields=fields)
    try:
        text_bytes = _tokenize(docs, writer, stats, files, Path(input_path).name, num_proc,
                               (str(tok_file), eos, np_dtype.str, True), progress)
        _warn_skipped(stats)
        if part is None:
            final = _groups_with_every_split(writer, groups, layout, input_path, val_fraction, test_fraction)
        else:  # a part may lack a group or a split: the merge checks the whole
            final = _present_groups(writer)
        meta = {"format": FORMAT, "version": VERSION, "tokenizer": str(tokenizer_spec),
                "tokenizer_sha256": tok_sha, "vocab_size": vocab, "dtype": np_dtype.name, "eos_id": eos,
                "fingerprint": fingerprint, "source_layout": layout, "split_settings": split_settings,
                "groups": {g: {s: writer.tokens[g, s] for s in SPLITS} for g in final},
                "documents": {g: {s: writer.docs[g, s] for s in SPLITS} for g in final},
                "skipped_lines": stats.malformed, "skipped_lines_by_file": dict(stats.malformed_by_file),
                "damaged_files": stats.damaged,
                "skipped_unknown_set": sum(stats.unknown_sets.values())}
        if part is not None:
            meta["part"] = part
        _commit(out, meta, writer, existing, final)
    except BaseException:
        _undo(out, writer, created_out)
        raise
    if progress:
        _print_summary(meta, out, text_bytes, time.perf_counter() - t0)
    return meta


def merge_parts(part_dirs, output_dir, overwrite=False, progress=True) -> dict:
    """Join the N part folders of a --shard preparation into `output_dir`: each group/split is the parts'
    shards concatenated in part order, so shards and meta.json equal a one-machine preparation's."""
    metas = []
    for path in part_dirs:
        meta = _read_meta(Path(path)) if Path(path).is_dir() else None
        if meta is None or not _shards_intact(meta, Path(path)):
            raise UsageError(f"--merge {path}: no intact prepared part here (meta.json missing, or its shards do "
                             "not match it)")
        metas.append(meta)
    parts = sharded.check_parts(metas, part_dirs)
    folders = {meta["part"]["index"]: Path(path) for meta, path in zip(metas, part_dirs)}
    requested = parts[0]["part"]["requested_groups"]
    found = _in_group_order({g for p in parts for g in p["groups"]})
    final = requested or found
    if not final:
        raise UsageError("--merge: the parts hold no documents of a known group")
    meta = sharded.joined_meta(parts, final, SPLITS)
    settings = meta["split_settings"]
    for g in final:
        for s in SPLITS:
            if not meta["documents"][g][s]:
                raise UsageError(_empty_split_message(meta["source_layout"], g, s, sum(meta["documents"][g].values()),
                                                      "the merged parts", settings["val_fraction"],
                                                      settings["test_fraction"]))
    out = Path(output_dir)
    old, existing = _reuse_or_refuse(out, output_dir, meta["fingerprint"], overwrite)
    if old is not None:
        if progress:
            print(f"{out}: already holds these parts merged (meta.json fingerprint matches)")
        return old
    created_out = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    writer = _ShardWriter(out)
    try:
        for part in parts:
            for g in final:
                for s in SPLITS:
                    tokens = part["groups"].get(g, {}).get(s, 0)
                    if tokens:
                        writer.append_file((g, s), folders[part["part"]["index"]] / g / f"{s}.bin", tokens,
                                           part["documents"][g][s])
        writer.close()
        _commit(out, meta, writer, existing, final)
    except BaseException:
        _undo(out, writer, created_out)
        raise
    if progress:
        print(f"merged {len(parts)} parts into {out}: " + ", ".join(
            f"{g} {sum(c.values())} tokens" for g, c in meta["groups"].items()))
    return meta


def _fingerprint(layout, files, tok_sha, np_dtype, split_settings, groups, skip_damaged=False) -> str:
    """What the shards were made from. The hash rule is the only split rule that uses seed and fractions:
    other layouts ignore them, and so does their fingerprint (changing --seed must not invalidate
    prepared SlimPajama shards). Shards that kept part of a damaged file are never reused by a run that
    did not ask for that."""
    fp_split = split_settings if layout == "jsonl" else {"rule": split_settings["rule"]}
    if layout == "hf_hub":  # a dataset without validation split halves its test split by a seeded hash
        fp_split["seed"] = split_settings["seed"]
    content = {"format": FORMAT, "version": VERSION, "layout": layout, "files": files, "tokenizer_sha256": tok_sha,
               "dtype": np_dtype.name, "split": fp_split, "groups": groups}
    if skip_damaged:
        content["skip_damaged"] = True
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _reuse_or_refuse(out: Path, output_dir, fingerprint, overwrite):
    """(the existing meta when `out` already holds intact shards of this fingerprint, else None; the shard
    files already there). Other shards are refused unless `overwrite`."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output {output_dir} is a file; pass a directory")
    old = _read_meta(out) if out.is_dir() else None
    if old is not None and old.get("fingerprint") == fingerprint and _shards_intact(old, out):
        return old, []
    existing = _existing_shards(out)
    if existing and not overwrite:
        why = "are damaged (sizes differ from meta.json)" if old and old.get("fingerprint") == fingerprint \
            else "come from other inputs or settings"
        raise UsageError(f"--output {output_dir} already holds shards that {why}; pass --overwrite to replace "
                         "them, or choose another --output")
    return None, existing


def _tokenize(docs, writer, stats, files, name, num_proc, worker_args, progress) -> int:
    """Tokenize the documents in batches (in `num_proc` spawned processes, or here) into the writer's
    temporary shards, in input order; returns the text bytes read."""
    from tqdm import tqdm

    bar = tqdm(total=sum(f[1] or 0 for f in files), unit="B", unit_scale=True, desc=f"tokenizing {name} (input bytes)",
               disable=None if progress else True)  # None: only on a terminal, never in logs
    pool, saved_env, text_bytes = None, False, 0
    try:
        if num_proc > 1:
            ctx = multiprocessing.get_context("spawn")  # fork is unsafe after torch/tokenizers threads
            pool = ctx.Pool(num_proc, _init_worker, worker_args)
        else:  # one process means one thread: rayon threads were ~1.8x slower on 2 cores (13 s vs 7.5 s)
            saved_env = os.environ.get("TOKENIZERS_PARALLELISM")
            _init_worker(*worker_args)
        pending = deque()
        for batch, nbytes in _batches(docs):
            text_bytes += nbytes
            pending.append(_encode(batch) if pool is None else pool.apply_async(_encode, (batch,)))
            while pending and (pool is None or len(pending) > 2 * num_proc):
                done = pending.popleft()
                for key, ids, ndocs in (done if pool is None else done.get()):
                    writer.write(key, ids, ndocs)
            bar.total = stats.total
            bar.update(stats.progress - bar.n)
        while pending:
            for key, ids, ndocs in pending.popleft().get():
                writer.write(key, ids, ndocs)
        bar.update(stats.total - bar.n)
        writer.close()
    except BaseException:
        if pool is not None:
            pool.terminate()
            pool.join()
            pool = None
        raise
    finally:
        bar.close()
        if saved_env is not False:  # the caller's tokenizers keep their own parallelism setting
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
            if saved_env is not None:
                os.environ["TOKENIZERS_PARALLELISM"] = saved_env
    if pool is not None:
        pool.close()
        pool.join()
    return text_bytes


def _warn_skipped(stats):
    if stats.malformed:
        per_file = ", ".join(f"{os.path.basename(f)}: {n}" for f, n in stats.malformed_by_file.most_common(5))
        more = " ..." if len(stats.malformed_by_file) > 5 else ""
        print(f"warning: skipped {stats.malformed} malformed JSON line(s) ({per_file}{more}; first at "
              f"{stats.first_malformed}); pass --strict to stop at the first", file=sys.stderr)
    if stats.unknown_sets:
        names = ", ".join(repr(n) for n, _ in stats.unknown_sets.most_common(3))
        print(f"warning: skipped {sum(stats.unknown_sets.values())} record(s) with an unknown "
              f"meta.redpajama_set_name ({names})", file=sys.stderr)


def _in_group_order(names) -> list:
    """SlimPajama's groups in the paper's order, then any other names (from --group_field) sorted."""
    return [g for g in SLIMPAJAMA_GROUPS if g in names] + sorted(set(names) - set(SLIMPAJAMA_GROUPS))


def _present_groups(writer) -> list:
    return _in_group_order({g for (g, _s), n in writer.docs.items() if n})


def _groups_with_every_split(writer, groups, layout, input_path, val_fraction, test_fraction) -> list:
    """The groups to write (the requested ones, else every group found); each must have documents in
    every split."""
    found = _present_groups(writer)
    for g in groups or []:
        if g not in found:
            raise UsageError(f"group {g!r} has no documents in --input {input_path} (groups found: "
                             f"{', '.join(found) or 'none'}); drop it from --groups")
    final = groups or found
    if not final:
        raise UsageError(f"--input {input_path} holds no documents of a known group; records need "
                         "meta.redpajama_set_name, e.g. RedPajamaArXiv")
    for g in final:
        ndocs = sum(writer.docs[g, s] for s in SPLITS)
        for s in SPLITS:
            if not writer.docs[g, s]:
                raise UsageError(_empty_split_message(layout, g, s, ndocs, input_path, val_fraction, test_fraction))
    return final


def _undo(out: Path, writer, created_out: bool) -> None:
    """After a failure: the temporary shards and meta go, and the output folder if this run created it."""
    writer.discard()
    (out / "meta.json.tmp").unlink(missing_ok=True)
    if created_out and not any(out.iterdir()):
        out.rmdir()


def _commit(out: Path, meta, writer, existing, final):
    """The old meta.json goes first, so an interruption here leaves a directory that is never mistaken for
    a valid one; then the shards (and the removal of groups no longer written); the new meta.json last."""
    (out / "meta.json").unlink(missing_ok=True)
    for path in existing:
        if path.name != "meta.json" and path.parent.name not in final:
            path.unlink()
    writer.commit()
    with open(out / "meta.json.tmp", "w") as fh:
        json.dump(meta, fh, indent=1)
    os.replace(out / "meta.json.tmp", out / "meta.json")


def _print_summary(meta, out, text_bytes, seconds):
    def fmt(n):
        return f"{n / 1e6:.2f}M" if n >= 1e5 else str(n)

    parts = [f"{g} {'/'.join(fmt(c[s]) for s in SPLITS)}" for g, c in meta["groups"].items()]
    mb = text_bytes / 1e6
    print(f"prepared {out}: tokens train/val/test: {', '.join(parts)}; {mb:.1f} MB of text in {seconds:.1f} s "
          f"({mb / max(seconds, 1e-9):.2f} MB/s, {meta['dtype']})")


def build_parser():
    p = OneLineArgumentParser(prog="python -m data.prepare", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", help="raw corpus: SlimPajama folder, .jsonl(.zst) file or "
                   "folder, a dataset saved with save_to_disk, or hf:NAME[:CONFIG], a dataset streamed with "
                   "`datasets` (a Hub id, e.g. hf:DKYoon/SlimPajama-6B, or a local folder of data files)")
    p.add_argument("--output", required=True, help="directory for <group>/{train,val,test}.bin + meta.json")
    p.add_argument("--tokenizer", help="tokenizer.json, a folder holding one, or a Hugging Face model id "
                   "(through the Hugging Face cache; downloaded when the Hub is reachable)")
    p.add_argument("--text_field", default=None, help="hf: inputs: the column holding the text (default: text)")
    p.add_argument("--group_field", default=None, help="hf: inputs: the column (dots for nested fields, e.g. "
                   "meta.source) whose value names a row's group; default: SlimPajama's meta.redpajama_set_name, "
                   "mapped to the short names")
    p.add_argument("--groups", nargs="+", default=None, help=f"subset of {' '.join(SLIMPAJAMA_GROUPS)} "
                   "(default: every group present)")
    p.add_argument("--num_proc", type=int, default=1, help="tokenizer processes")
    p.add_argument("--seed", type=int, default=0, help="seed of the jsonl layout's hash split")
    p.add_argument("--val_fraction", type=float, default=0.05, help="jsonl layout: fraction of documents")
    p.add_argument("--test_fraction", type=float, default=0.05, help="jsonl layout: fraction of documents")
    p.add_argument("--dtype", choices=["auto", "uint16", "uint32"], default="auto")
    p.add_argument("--strict", action="store_true", help="stop at the first malformed JSON line")
    p.add_argument("--skip_damaged_files", action="store_true",
                   help="keep the readable start of a truncated or corrupt .zst file instead of stopping (the loss "
                        "is recorded in meta.json)")
    p.add_argument("--overwrite", action="store_true", help="replace shards prepared with other settings")
    p.add_argument("--no_progress", action="store_true", help="no progress bar and no summary line")
    p.add_argument("--shard", default=None, metavar="I/N", help="prepare part I of N (0-based): a contiguous "
                   "block of the input files, for several machines; join the parts with --merge")
    p.add_argument("--merge", nargs="+", default=None, metavar="PART", help="join the N part folders of a "
                   "--shard preparation into --output (no --input or --tokenizer needed)")
    return p


@exit_on_usage_error
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.merge:
        with FileLock(os.path.abspath(args.output).rstrip(os.sep) + ".lock"):
            merge_parts(args.merge, args.output, overwrite=args.overwrite, progress=not args.no_progress)
        return
    missing = [flag for flag in ("input", "tokenizer") if getattr(args, flag) is None]
    if missing:
        raise UsageError(f"python -m data.prepare: --{' and --'.join(missing)} required (or --merge PART ...)")
    prepare_corpus(args.input, args.output, args.tokenizer, groups=args.groups, num_proc=args.num_proc,
                   seed=args.seed, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                   strict=args.strict, skip_damaged=args.skip_damaged_files, overwrite=args.overwrite,
                   progress=not args.no_progress, dtype=args.dtype,
                   shard=sharded.parse_shard(args.shard) if args.shard else None, text_field=args.text_field,
                   group_field=args.group_field)


if __name__ == "__main__":
    main()

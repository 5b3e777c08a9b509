"""Readers of the raw input layouts that `data.prepare` accepts; each yields (group, split, text) documents.

- `slimpajama`: train/ validation/ test/ folders of *.jsonl(.zst); `jsonl`: files whose val/test
  documents are chosen by a seeded hash of their text (`hash_split`); `hf_disk`: a saved DatasetDict
  (the paper's SlimPajama-6B recipe); `hf_hub`: `hf:NAME[:CONFIG]`, a dataset streamed with `datasets`
  (a Hub id such as DKYoon/SlimPajama-6B or cerebras/SlimPajama-627B, or a local folder of data files),
  read row by row in bounded memory; `shards`: already prepared.
- Records: {"text", "meta": {"redpajama_set_name"}}; malformed lines and unknown sets are counted (per
  file) and skipped (fatal with `strict`).
- A damaged file (a .zst that ends inside a frame or holds invalid data) is an error naming it; with
  `skip_damaged`, its documents before the damage are kept and the loss is recorded. The layouts and the
  split rules in full: docs/data.md.
"""
import hashlib
import io
import json
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from data.groups import META2SUBSET, SUBSET2META
from errors import UsageError

SPLIT_DIRS = {"train": "train", "validation": "val", "test": "test"}
HF_SHUFFLE_SEED = 42  # the paper's fixed seed for halving SlimPajama-6B's test split
BATCH_ROWS = 1000  # rows per arrow read (hf_disk): bounds memory to about one batch of text


def _natural_key(rel: str):
    """Sort key that puts chunk2 before chunk10 (SlimPajama's file names)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", rel)]


def _is_jsonl(path: Path) -> bool:
    return path.name.endswith((".jsonl", ".jsonl.zst"))


def _jsonl_under(root: Path) -> list[Path]:
    found = [p for p in root.rglob("*") if p.is_file() and _is_jsonl(p)]
    return sorted(found, key=lambda p: _natural_key(p.relative_to(root).as_posix()))


HUB_PREFIX = "hf:"


def hub_spec(input_path):
    """(NAME, CONFIG or None) of an `hf:NAME[:CONFIG]` input."""
    name, _, config = str(input_path)[len(HUB_PREFIX):].partition(":")
    if not name:
        raise UsageError(f"--input {input_path}: give a dataset after hf:, e.g. hf:DKYoon/SlimPajama-6B")
    return name, config or None


def detect_layout(input_path) -> str:
    """"slimpajama", "jsonl", "hf_disk", "hf_hub" or "shards" (see the module docstring); UsageError if none
    fits."""
    if str(input_path).startswith(HUB_PREFIX):
        hub_spec(input_path)
        return "hf_hub"
    path = Path(input_path)
    if not path.exists():
        raise UsageError(f"--input {input_path} does not exist")
    if path.is_file():
        if _is_jsonl(path):
            return "jsonl"
        raise UsageError(f"--input {input_path}: a file must end in .jsonl or .jsonl.zst")
    if (path / "meta.json").is_file() or any((sub / "train.bin").is_file() for sub in path.iterdir()
                                              if sub.is_dir()):
        return "shards"
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return "hf_disk"
    if (path / "train").is_dir() and any((path / d).is_dir() for d in ("validation", "test")) \
            and _jsonl_under(path / "train"):
        return "slimpajama"
    if _jsonl_under(path):
        return "jsonl"
    raise UsageError(f"--input {input_path}: found no .jsonl/.jsonl.zst files, SlimPajama train/ validation/ "
                     "test/ folders, or a dataset saved with save_to_disk")


def input_files(layout: str, input_path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every file the layout reads, in reading order (for the fingerprint).
    A Hub dataset has none here (prepare fingerprints it by name); a local folder streamed with hf: has its
    files."""
    if layout == "hf_hub":
        name, _ = hub_spec(input_path)
        local = Path(name)
        return [(p.relative_to(local).as_posix(), p) for p in sorted(local.rglob("*")) if p.is_file()] \
            if local.is_dir() else []
    root = Path(input_path)
    if layout == "jsonl":
        if root.is_file():
            return [(root.name, root)]
        return [(p.relative_to(root).as_posix(), p) for p in _jsonl_under(root)]
    if layout == "slimpajama":
        return [(p.relative_to(root).as_posix(), p) for d in SPLIT_DIRS if (root / d).is_dir()
                for p in _jsonl_under(root / d)]
    if layout == "hf_disk":  # every file of the saved dataset except caches that `datasets` ops may add
        files = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith("cache-")]
        return sorted(((p.relative_to(root).as_posix(), p) for p in files), key=lambda t: t[0])
    raise ValueError(f"no input files for layout {layout!r}")


def hash_split(text_bytes: bytes, seed: int, val_fraction: float, test_fraction: float) -> str:
    """"val", "test" or "train" for a document of the jsonl layout (formula in the module docstring)."""
    key = hashlib.sha256(str(seed).encode() + b"\0" + text_bytes).digest()
    u = int.from_bytes(key[:8], "big") / 2.0 ** 64
    if u < val_fraction:
        return "val"
    return "test" if u < val_fraction + test_fraction else "train"


@dataclass
class ReadStats:
    """What the readers skipped, and how far they got. progress/total are in bytes of input files."""
    malformed: int = 0
    first_malformed: str | None = None  # "file:line"
    malformed_by_file: Counter = field(default_factory=Counter)
    unknown_sets: Counter = field(default_factory=Counter)
    damaged: list = field(default_factory=list)  # {"file", "lines_kept", "error"}: the rest of the file is lost
    progress: int = 0
    total: int = 0


class DamagedFile(Exception):
    """A compressed file that ends inside a frame (truncated download) or holds invalid data."""


class _CheckedZstdStream(io.RawIOBase):
    """The decompressed bytes of a .zst file, frame after frame. Unlike zstandard's stream reader, which
    returns what it has when the file ends inside a frame, this raises DamagedFile then, so a truncated
    file is never taken for a shorter one."""

    def __init__(self, raw):
        import zstandard

        self._raw, self._error = raw, zstandard.ZstdError
        self._dctx = zstandard.ZstdDecompressor()
        self._frame = self._dctx.decompressobj()
        self._in_frame = False  # bytes of an unfinished frame have been read
        self._out, self._pos = b"", 0

    def readable(self):
        return True

    def readinto(self, buffer):
        while self._pos == len(self._out):
            chunk = self._raw.read(1 << 17)  # small reads: a corrupt spot loses little before it
            if not chunk:
                if self._in_frame:
                    raise DamagedFile("the file ends inside a zstd frame (truncated)")
                return 0
            self._out, self._pos = self._decompress(chunk), 0
        n = min(len(buffer), len(self._out) - self._pos)
        buffer[:n] = self._out[self._pos:self._pos + n]
        self._pos += n
        return n

    def _decompress(self, data: bytes) -> bytes:
        parts = []
        while data:
            try:
                parts.append(self._frame.decompress(data))
            except self._error as err:
                raise DamagedFile(f"invalid zstd data ({err})") from None
            self._in_frame = not self._frame.eof
            data = self._frame.unused_data if self._frame.eof else b""
            if self._frame.eof:
                self._frame = self._dctx.decompressobj()
        return b"".join(parts)


def _clean_text(text: str) -> tuple[str, bytes]:
    """(text, utf-8 bytes); lone surrogates (legal in JSON escapes) become U+FFFD so text can be encoded."""
    try:
        return text, text.encode("utf-8")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "replace")
        return raw.decode("utf-8"), raw


def _group_of(record, stats: ReadStats):
    """Short group name of a parsed record, or None (unknown set name, counted)."""
    meta = record.get("meta")
    name = meta.get("redpajama_set_name") if isinstance(meta, dict) else None
    if isinstance(name, str) and name in META2SUBSET:
        return META2SUBSET[name]
    if isinstance(name, str) and name in SUBSET2META:
        return name
    stats.unknown_sets[str(name)] += 1
    return None


def _open_lines(path: Path):
    """(binary line iterator, raw file handle) of a .jsonl or .jsonl.zst file; the handle's tell() is the
    number of bytes of the file consumed so far (compressed bytes for .zst)."""
    raw = open(path, "rb")
    if path.name.endswith(".zst"):
        return io.BufferedReader(_CheckedZstdStream(raw), buffer_size=1 << 20), raw
    return raw, raw


def _iter_jsonl_file(path: Path, display: str, split, wanted, strict, skip_damaged, stats, split_args):
    """Documents of one file; `split` is fixed (slimpajama) or None (hash split with split_args)."""
    lines, raw = _open_lines(path)
    start, lineno = stats.progress, 0
    with raw:
        try:
            for lineno, line in enumerate(lines, 1):
                if lineno % 256 == 0:
                    stats.progress = start + raw.tell()
                doc = _parse_line(line, f"{display}:{lineno}", strict, stats)
                if doc is None:
                    continue
                group, text = doc
                if wanted is not None and group not in wanted:
                    continue
                text, raw_text = _clean_text(text)
                doc_split = split or hash_split(raw_text, *split_args)
                yield group, doc_split, text, len(raw_text)
        except DamagedFile as err:
            if not skip_damaged:
                raise UsageError(f"{display} is damaged: {err}, after {lineno} line(s); download or repair it "
                                 "again, or pass --skip_damaged_files to keep the lines before the damage "
                                 "(recorded in meta.json)") from None
            stats.damaged.append({"file": display, "lines_kept": lineno, "error": str(err)})
            print(f"warning: {display} is damaged ({err}); kept its first {lineno} line(s), the rest of the "
                  "file is lost (recorded in meta.json)", file=sys.stderr)
        stats.progress = start + os.fstat(raw.fileno()).st_size


def _parse_line(line: bytes, where: str, strict: bool, stats: ReadStats):
    """(group, text) of one JSON line; None for a blank line, a malformed one (counted; an error with
    `strict`) or a record of an unknown set."""
    if not line.strip():
        return None
    try:
        record = json.loads(line)
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError('not a JSON object with a string "text" field')
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        if strict:
            raise UsageError(f"malformed JSON line at {where} ({str(err).splitlines()[0]}); fix or "
                             "remove it, or drop --strict to skip such lines") from None
        stats.malformed += 1
        stats.malformed_by_file[where.rsplit(":", 1)[0]] += 1
        stats.first_malformed = stats.first_malformed or where
        return None
    group = _group_of(record, stats)
    return None if group is None else (group, record["text"])


def _iter_hf_disk(root: Path, wanted, stats):
    import numpy as np

    try:
        import datasets
    except ImportError:
        raise UsageError(f"--input {root} is a saved Hugging Face dataset, which needs the `datasets` "
                         "package: pip install datasets") from None
    try:
        dsd = datasets.load_from_disk(str(root))
    except Exception as err:
        raise UsageError(f"--input {root}: cannot load the saved dataset ({err})") from None
    if not isinstance(dsd, datasets.DatasetDict) or not {"train", "test"} <= set(dsd):
        found = sorted(dsd) if isinstance(dsd, datasets.DatasetDict) else "a single Dataset"
        raise UsageError(f"--input {root}: need a DatasetDict with 'train' and 'test' splits (found "
                         f"{found}); save one with DatasetDict(train=..., test=...).save_to_disk(...)")
    for name, ds in dsd.items():
        if name in ("train", "test") and not {"text", "meta"} <= set(ds.column_names):
            raise UsageError(f"--input {root}: split {name!r} lacks a 'text' or 'meta' column "
                             f"(has {ds.column_names})")
    # Progress in rows, scaled to bytes of arrow data so the bar's unit (MB of input) stays meaningful.
    total_rows = len(dsd["train"]) + 2 * len(dsd["test"])  # test is read twice: metas, then texts
    bytes_per_row = stats.total / max(total_rows, 1)
    rows_done = 0

    def groups_of(metas):
        return [_group_of({"meta": m}, stats) for m in metas]

    train = dsd["train"].select_columns(["text", "meta"])
    for batch in train.iter(batch_size=BATCH_ROWS):
        for group, text in zip(groups_of(batch["meta"]), batch["text"]):
            if group is not None and (wanted is None or group in wanted) and isinstance(text, str):
                text, raw = _clean_text(text)
                yield group, "train", text, len(raw)
        rows_done += len(batch["text"])
        stats.progress = int(rows_done * bytes_per_row)

    # The group's test rows (indices only: small), permuted exactly as Dataset.shuffle(seed=42) would
    # permute the filtered split, then halved by parity.
    test = dsd["test"]
    rows_by_group: dict[str, list[int]] = {}
    start = 0
    for batch in test.select_columns(["meta"]).iter(batch_size=BATCH_ROWS):
        for offset, group in enumerate(groups_of(batch["meta"])):
            if group is not None and (wanted is None or group in wanted):
                rows_by_group.setdefault(group, []).append(start + offset)
        start += len(batch["meta"])
    rows_done += len(test)
    test_texts = test.select_columns(["text"])
    for group, rows in rows_by_group.items():
        order = np.asarray(rows)[np.random.default_rng(HF_SHUFFLE_SEED).permutation(len(rows))]
        for split, part in (("val", order[0::2]), ("test", order[1::2])):
            for lo in range(0, len(part), BATCH_ROWS):
                # keep_in_memory: an indices mapping on disk would be written into the input folder
                texts = test_texts.select(part[lo:lo + BATCH_ROWS], keep_in_memory=True)["text"]
                for text in texts:
                    text, raw = _clean_text(text if isinstance(text, str) else "")
                    yield group, split, text, len(raw)
                rows_done += min(BATCH_ROWS, len(part) - lo)
                stats.progress = int(rows_done * bytes_per_row)


# a streamed dataset's split -> ours; a dataset without "validation" has its "test" halved (_iter_hf_hub)
HUB_SPLITS = {"train": "train", "validation": "val", "test": "test"}


GROUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # a group is a folder of the shards


def _field(row, dotted: str):
    """row["a"]["b"] for "a.b"; None when a level is missing."""
    value = row
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _named_group(row, field: str, stats: ReadStats):
    """The group named by a row's `field` (--group_field); None (counted) when it is missing."""
    value = _field(row, field)
    if value is None or value == "":
        stats.unknown_sets["(no " + field + ")"] += 1
        return None
    name = str(value)
    if not GROUP_NAME.match(name):
        raise UsageError(f"--group_field {field}: the value {name[:60]!r} cannot name a group (a folder of the "
                         "shards: letters, digits, _ . -, at most 100 characters); pick another field")
    return name


def _iter_hf_hub(input_path, wanted, stats, seed, fields=None):
    """Documents of a dataset streamed with `datasets`: the text in fields["text"], the group named by
    fields["group"] (None: SlimPajama's meta.redpajama_set_name, mapped to the short names). Without a
    "validation" split, each test document goes to val or test by a seeded hash of its text (half each;
    streaming cannot shuffle)."""
    import datasets

    fields = fields or {"text": "text", "group": None}

    name, config = hub_spec(input_path)
    try:
        streams = datasets.load_dataset(name, config, streaming=True)
    except Exception as err:  # unknown id, unreachable Hub, offline and not cached, unreadable files
        import hub

        raise UsageError(hub.not_available("--input", str(input_path), "the dataset", err)) from None
    if "train" not in streams or not {"validation", "test"} & set(streams):
        raise UsageError(f"--input {input_path}: need a 'train' split and a 'validation' or 'test' split "
                         f"(found {sorted(streams)})")
    for split_name, ours in HUB_SPLITS.items():
        if split_name not in streams:
            continue
        for row in streams[split_name]:
            group = _group_of(row, stats) if fields["group"] is None else _named_group(row, fields["group"], stats)
            text = _field(row, fields["text"])
            if group is None or (wanted is not None and group not in wanted) or not isinstance(text, str):
                continue
            text, raw = _clean_text(text)
            split = ours
            if split_name == "test" and "validation" not in streams:
                split = hash_split(raw, seed, 0.5, 0.5)
            stats.progress += len(raw)
            stats.total = max(stats.total, stats.progress)  # unknown in advance: the bar grows with the stream
            yield group, split, text, len(raw)


def iter_documents(layout, input_path, wanted, *, seed, val_fraction, test_fraction, strict, stats,
                   skip_damaged=False, only=None, fields=None):
    """Yield (group, split, text, utf-8 bytes of text) for every document of a wanted group (all known
    groups when `wanted` is None), in a deterministic order. Skips are recorded in `stats`. fields: the
    text and group columns of a streamed dataset (hf_hub only)."""
    if layout == "hf_hub":
        yield from _iter_hf_hub(input_path, wanted, stats, seed, fields)
        return
    root = Path(input_path)
    files = input_files(layout, root)
    if only is not None:  # one part of a sharded preparation: these relative paths only
        files = [(rel, path) for rel, path in files if rel in only]
    stats.total = sum(p.stat().st_size for _, p in files)
    if layout == "hf_disk":
        yield from _iter_hf_disk(root, wanted, stats)
        return
    for rel, path in files:
        split = SPLIT_DIRS[rel.split("/", 1)[0]] if layout == "slimpajama" else None
        yield from _iter_jsonl_file(path, str(path), split, wanted, strict, skip_damaged, stats,
                                    (seed, val_fraction, test_fraction))

"""Tests of data.prepare: raw corpora (SlimPajama folders, jsonl(.zst), save_to_disk) -> token shards.

Every expected shard is rebuilt independently: documents tokenized one by one with `Tokenizer.encode`
(no special tokens) plus one EOS, in the order each layout documents.
"""
import hashlib
import inspect
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zstandard
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import data.prepare as prep
from data.groups import SUBSET2META
from data.prepare import detect_layout, prepare_corpus
from data.tokenization import eos_id, load_tokenizer, tokenizer_sha256
from errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
SPLITS = ("train", "val", "test")
# Real text: standard-library docstrings, one group per family of modules.
GROUP_MODULES = {"arxiv": ["math", "statistics", "fractions", "decimal"], "book": ["textwrap", "string", "difflib"],
                 "github": ["os", "shutil", "pathlib"], "stackexchange": ["json", "re", "collections"]}


def _paragraphs(module_names):
    import importlib

    seen, out = set(), []
    for name in module_names:
        mod = importlib.import_module(name)
        for obj in [mod] + [getattr(mod, a) for a in sorted(dir(mod)) if not a.startswith("_")]:
            doc = inspect.getdoc(obj) if callable(obj) or inspect.ismodule(obj) else None
            for para in (doc or "").split("\n\n"):
                if len(para) > 40 and para not in seen:
                    seen.add(para)
                    out.append(para)
    return out


@pytest.fixture(scope="session")
def docs():
    """{group: [document text]}: 60 paragraphs per group (a few cut to keep fixtures small)."""
    return {g: _paragraphs(mods)[:60] for g, mods in GROUP_MODULES.items()}


@pytest.fixture(scope="session")
def tok_path(tmp_path_factory, docs):
    """A byte-level BPE (vocab 400) trained on the fixture text, <|endoftext|> = id 0."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([d for texts in docs.values() for d in texts], trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="session")
def big_tok_path(tmp_path_factory, tok_path):
    """The same tokenizer with 70,000 added tokens: vocabulary 70,400 > 65,536, so uint32 shards."""
    tok = Tokenizer.from_file(str(tok_path))
    tok.add_tokens([f"<extra_{i}>" for i in range(70000)])
    path = tmp_path_factory.mktemp("bigtok") / "tokenizer.json"
    tok.save(str(path))
    return path


def _encode(tok_path, texts, dtype="uint16"):
    tok = Tokenizer.from_file(str(tok_path))
    ids = [i for t in texts for i in tok.encode(t, add_special_tokens=False).ids + [0]]
    return np.array(ids, dtype=dtype)


def _record(group, text):
    return json.dumps({"text": text, "meta": {"redpajama_set_name": SUBSET2META[group]}})


def _write_jsonl(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if path.name.endswith(".zst") else data)


def _hash_split(text, seed, vf, tf):  # the formula in docs/data.md, written out again
    u = int.from_bytes(hashlib.sha256(str(seed).encode() + b"\0" + text.encode()).digest()[:8], "big") / 2**64
    return "val" if u < vf else "test" if u < vf + tf else "train"


def _check_shards(out, tok_path, expected, dtype="uint16"):
    """expected: {group: {split: [texts in order]}}; checks .bin contents and meta.json counts."""
    meta = json.loads((out / "meta.json").read_text())
    assert meta["format"] == "aioli-shards" and meta["dtype"] == dtype and meta["eos_id"] == 0
    assert list(meta["groups"]) == list(expected)
    for g, splits in expected.items():
        for s in SPLITS:
            want = _encode(tok_path, splits[s], dtype)
            got = np.fromfile(out / g / f"{s}.bin", dtype=dtype)
            assert np.array_equal(got, want), (g, s)
            assert meta["groups"][g][s] == len(want) and meta["documents"][g][s] == len(splits[s])
    assert not list(out.rglob("*.tmp"))
    return meta


def _jsonl_corpus(root, docs, groups, zst_half=True):
    """Documents of `groups` interleaved over two files (.jsonl and .jsonl.zst); returns the line order."""
    order = [(g, t) for g in groups for t in docs[g]]
    random.Random(1).shuffle(order)
    half = len(order) // 2
    _write_jsonl(root / "a.jsonl", [_record(g, t) for g, t in order[:half]])
    _write_jsonl(root / "sub" / ("b.jsonl.zst" if zst_half else "b.jsonl"), [_record(g, t) for g, t in order[half:]])
    return order


def test_jsonl_layout_matches_independent_tokenization(tmp_path, docs, tok_path):
    order = _jsonl_corpus(tmp_path / "raw", docs, ["arxiv", "github"])
    assert detect_layout(tmp_path / "raw") == "jsonl"
    meta = prepare_corpus(tmp_path / "raw", tmp_path / "out", tok_path, seed=3, val_fraction=0.2,
                          test_fraction=0.2, progress=False)
    expected = {g: {s: [] for s in SPLITS} for g in ("arxiv", "github")}
    for g, t in order:  # a.jsonl then sub/b.jsonl.zst: reading order = line order here
        expected[g][_hash_split(t, 3, 0.2, 0.2)].append(t)
    _check_shards(tmp_path / "out", tok_path, expected)
    assert meta["source_layout"] == "jsonl" and meta["skipped_lines"] == 0
    assert meta["tokenizer_sha256"] == tokenizer_sha256(tok_path) and meta["vocab_size"] == 400


def _docs_by_split(out, group):
    """{split: sorted list of token tuples, one per document} (documents cut at EOS = 0)."""
    result = {}
    for s in SPLITS:
        ids = np.fromfile(out / group / f"{s}.bin", dtype=np.uint16)
        cuts = np.flatnonzero(ids == 0)
        result[s] = sorted(tuple(d) for d in np.split(ids, cuts + 1)[:-1])
    return result


def test_jsonl_split_deterministic_and_independent_of_file_order(tmp_path, docs, tok_path):
    texts = docs["book"] + docs["book"][:5]  # five duplicated documents
    a, b = tmp_path / "a", tmp_path / "b"
    _write_jsonl(a / "all.jsonl", [_record("book", t) for t in texts])
    shuffled = texts[:]
    random.Random(7).shuffle(shuffled)
    _write_jsonl(b / "x.jsonl.zst", [_record("book", t) for t in shuffled[:30]])
    _write_jsonl(b / "y.jsonl", [_record("book", t) for t in shuffled[30:]])
    kw = dict(seed=0, val_fraction=0.25, test_fraction=0.25, progress=False)
    prepare_corpus(a, tmp_path / "oa", tok_path, **kw)
    prepare_corpus(a, tmp_path / "oa2", tok_path, **kw)
    prepare_corpus(b, tmp_path / "ob", tok_path, **kw)
    for s in SPLITS:  # same input twice: byte-identical
        assert (tmp_path / "oa" / "book" / f"{s}.bin").read_bytes() == (tmp_path / "oa2" / "book" / f"{s}.bin").read_bytes()
    by_a, by_b = _docs_by_split(tmp_path / "oa", "book"), _docs_by_split(tmp_path / "ob", "book")
    assert by_a == by_b  # same documents in each split, whatever the files
    for t in texts[:5]:  # both copies of a duplicate sit in one split
        ids = tuple(_encode(tok_path, [t]))  # documents in by_a keep their EOS
        assert sorted(sum(d == ids for d in by_a[s]) for s in SPLITS) == [0, 0, 2]


def test_slimpajama_layout(tmp_path, docs, tok_path, capsys):
    raw = tmp_path / "sp"
    files = {"train/chunk2/example_train_0.jsonl.zst": slice(0, 20),
             "train/chunk10/example_train_0.jsonl.zst": slice(20, 40),  # natural order: chunk2 < chunk10
             "validation/chunk1/example_holdout_0.jsonl.zst": slice(40, 50),
             "test/chunk1/example_holdout_0.jsonl.zst": slice(50, 60)}
    for rel, part in files.items():
        lines = [_record(g, t) for g in ("arxiv", "stackexchange") for t in docs[g][part]]
        if rel.startswith("train/chunk2"):
            lines += ['{"text": "broken', json.dumps({"text": "x", "meta": {"redpajama_set_name": "RedPajamaNews"}})]
        _write_jsonl(raw / rel, lines)
    assert detect_layout(raw) == "slimpajama"
    meta = prepare_corpus(raw, tmp_path / "out", tok_path, groups=["stackexchange", "arxiv"], progress=False)
    expected = {g: {"train": docs[g][0:40], "val": docs[g][40:50], "test": docs[g][50:60]}
                for g in ("stackexchange", "arxiv")}
    _check_shards(tmp_path / "out", tok_path, expected)
    assert meta["skipped_lines"] == 1 and meta["skipped_unknown_set"] == 1
    err = capsys.readouterr().err
    assert "1 malformed JSON line" in err and "chunk2/example_train_0.jsonl.zst:41" in err and "RedPajamaNews" in err


@pytest.mark.parametrize("with_validation", [True, False])
def test_hf_hub_layout_streams_a_dataset(tmp_path, docs, tok_path, with_validation):
    """--input hf:NAME streams with `datasets` (here a local folder of data files, the same code path as a Hub
    id): the dataset's own splits, in stream order; without a validation split the test split is halved by
    a seeded hash of each document."""
    pytest.importorskip("datasets")
    raw = tmp_path / "ds"
    parts = {"train": slice(0, 30), "validation": slice(30, 40), "test": slice(40, 60)}
    if not with_validation:
        del parts["validation"]
    for split, part in parts.items():
        _write_jsonl(raw / split / "data.jsonl", [_record(g, t) for g in ("arxiv", "github") for t in docs[g][part]])
    spec = f"hf:{raw}"
    assert detect_layout(spec) == "hf_hub"
    meta = prepare_corpus(spec, tmp_path / "out", tok_path, seed=5, progress=False)
    expected = {g: {"train": docs[g][0:30]} for g in ("arxiv", "github")}
    for g in expected:
        if with_validation:
            expected[g].update(val=docs[g][30:40], test=docs[g][40:60])
        else:
            halves = [_hash_split(t, 5, 0.5, 0.5) for t in docs[g][40:60]]
            expected[g].update({s: [t for t, h in zip(docs[g][40:60], halves) if h == s] for s in ("val", "test")})
    _check_shards(tmp_path / "out", tok_path, expected)
    assert meta["source_layout"] == "hf_hub"
    again = prepare_corpus(spec, tmp_path / "out", tok_path, seed=5, progress=False)  # fingerprint: reused
    assert again["fingerprint"] == meta["fingerprint"]
    # the seed is in the fingerprint either way: whether the dataset has a validation split is known only
    # once it streams
    other = prepare_corpus(spec, tmp_path / "out2", tok_path, seed=6, progress=False)
    assert other["fingerprint"] != meta["fingerprint"]


def test_hf_hub_layout_with_named_text_and_group_fields(tmp_path, docs, tok_path):
    """Any dataset with a text column and a column naming the group (nested with dots) becomes shards whose
    groups are that column's values; main.py trains on them by those names."""
    pytest.importorskip("datasets")
    raw, sources = tmp_path / "ds", {"arxiv": "papers", "github": "code-2"}
    parts = {"train": slice(0, 30), "validation": slice(30, 40), "test": slice(40, 60)}
    for split, part in parts.items():
        _write_jsonl(raw / split / "data.jsonl", [json.dumps({"content": t, "info": {"source": sources[g]}})
                                                  for g in sources for t in docs[g][part]])
    meta = prepare_corpus(f"hf:{raw}", tmp_path / "out", tok_path, text_field="content", group_field="info.source",
                          progress=False)
    expected = {sources[g]: {"train": docs[g][0:30], "val": docs[g][30:40], "test": docs[g][40:60]}
                for g in ("github", "arxiv")}  # other names come in sorted order
    _check_shards(tmp_path / "out", tok_path, expected)
    assert meta["groups"].keys() == {"code-2", "papers"}
    with pytest.raises(UsageError, match="no documents of a known group"):  # SlimPajama's field: absent here
        prepare_corpus(f"hf:{raw}", tmp_path / "out2", tok_path, text_field="content", progress=False)
    import main

    main.main(["--train_data_dir", str(tmp_path / "out"), "--val_data_dir", str(tmp_path / "out"), "--slice_list",
               "papers", "code-2", "--model", "tiny", "--checkpoint", "0", "--max_steps", "2", "--batch_size", "2",
               "--context_length", "32", "--max_eval_samples", "2", "--max_test_samples", "2",
               "--output_dir", str(tmp_path / "runs"), "--run_name", "r", "--no_progress", "--num_threads", "1"])
    results = json.loads((tmp_path / "runs" / "r" / "results.json").read_text())
    assert results["status"] == "complete" and list(results["test_loss"]) == ["papers", "code-2"]


@pytest.mark.parametrize("argv, message", [
    (["--group_field", "meta.source"], "--text_field/--group_field: only for a streamed dataset"),
])
def test_field_flags_need_a_streamed_dataset(tmp_path, docs, tok_path, argv, message):
    _write_jsonl(tmp_path / "raw" / "a.jsonl", [_record("arxiv", t) for t in docs["arxiv"][:5]])
    proc = _cli("--input", tmp_path / "raw", "--output", tmp_path / "out", "--tokenizer", tok_path, *argv)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr
    assert not (tmp_path / "out").exists()


def test_hf_hub_dataset_not_available_is_one_line(tmp_path, tok_path):
    with pytest.raises(UsageError) as err:  # offline in the tests (HF_HUB_OFFLINE=1), and not cached
        prepare_corpus("hf:acme/no-such-dataset", tmp_path / "out", tok_path, progress=False)
    line = str(err.value)
    assert "\n" not in line and line.startswith("--input hf:acme/no-such-dataset: the dataset could not be loaded")
    assert not (tmp_path / "out").exists()


def test_hf_disk_layout_follows_seed42_halves(tmp_path, docs, tok_path):
    datasets = pytest.importorskip("datasets")

    def rows(part):
        items = [(g, t) for g in ("github", "book") for t in docs[g][part]]
        random.Random(2).shuffle(items)
        return {"text": [t for _, t in items], "meta": [{"redpajama_set_name": SUBSET2META[g]} for g, _ in items]}

    train, test = datasets.Dataset.from_dict(rows(slice(0, 40))), datasets.Dataset.from_dict(rows(slice(40, 57)))
    datasets.DatasetDict(train=train, test=test).save_to_disk(str(tmp_path / "hf"))
    before = sorted(p.name for p in (tmp_path / "hf").rglob("*"))
    assert detect_layout(tmp_path / "hf") == "hf_disk"
    prepare_corpus(tmp_path / "hf", tmp_path / "out", tok_path, groups=["book", "github"], progress=False)
    expected = {}
    for g in ("book", "github"):  # the paper's recipe, with the datasets library itself
        mine = test.filter(lambda m: m["redpajama_set_name"] == SUBSET2META[g], input_columns="meta")
        shuffled = mine.shuffle(seed=42)["text"]
        expected[g] = {"train": [t for t, m in zip(train["text"], train["meta"]) if m["redpajama_set_name"] == SUBSET2META[g]],
                       "val": shuffled[0::2], "test": shuffled[1::2]}
    _check_shards(tmp_path / "out", tok_path, expected)
    assert sorted(p.name for p in (tmp_path / "hf").rglob("*")) == before  # nothing written into the input


def test_rerun_is_noop_and_other_settings_refused(tmp_path, docs, tok_path):
    _jsonl_corpus(tmp_path / "raw", docs, ["arxiv"])
    kw = dict(val_fraction=0.2, test_fraction=0.2, progress=False)
    meta = prepare_corpus(tmp_path / "raw", tmp_path / "out", tok_path, **kw)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")}
    t0 = time.perf_counter()
    assert prepare_corpus(tmp_path / "raw", tmp_path / "out", tok_path, **kw) == meta
    assert time.perf_counter() - t0 < 1.0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")} == stamps
    with pytest.raises(UsageError, match="--overwrite"):
        prepare_corpus(tmp_path / "raw", tmp_path / "out", tok_path, seed=1, **kw)
    new = prepare_corpus(tmp_path / "raw", tmp_path / "out", tok_path, seed=1, overwrite=True, **kw)
    assert new["fingerprint"] != meta["fingerprint"] and new["split_settings"]["seed"] == 1


def test_num_proc_2_is_byte_identical(tmp_path, docs, tok_path, monkeypatch):
    monkeypatch.setattr(prep, "BATCH_DOCS", 7)  # many small batches, several in flight at once
    _jsonl_corpus(tmp_path / "raw", docs, list(GROUP_MODULES))
    kw = dict(val_fraction=0.2, test_fraction=0.2, progress=False)
    prepare_corpus(tmp_path / "raw", tmp_path / "o1", tok_path, num_proc=1, **kw)
    prepare_corpus(tmp_path / "raw", tmp_path / "o2", tok_path, num_proc=2, **kw)
    files = sorted(p.relative_to(tmp_path / "o1") for p in (tmp_path / "o1").rglob("*") if p.is_file())
    assert len(files) == 1 + 3 * len(GROUP_MODULES)
    for rel in files:
        assert (tmp_path / "o1" / rel).read_bytes() == (tmp_path / "o2" / rel).read_bytes(), rel


def test_two_processes_preparing_at_once_both_succeed(tmp_path, docs, tok_path):
    """What a sweep does: runs started together on one raw corpus. The lock makes one prepare while the
    other waits and then reuses the result; both exit 0 and the shards are the single-process ones."""
    _jsonl_corpus(tmp_path / "raw", docs, list(GROUP_MODULES))
    args = ["--input", tmp_path / "raw", "--output", tmp_path / "out", "--tokenizer", tok_path,
            "--val_fraction", "0.2", "--test_fraction", "0.2"]
    procs = [subprocess.Popen([sys.executable, "-m", "data.prepare", *map(str, args)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert sum("already prepared" in out for out, _ in outs) == 1
    prepare_corpus(tmp_path / "raw", tmp_path / "ref", tok_path, val_fraction=0.2, test_fraction=0.2, progress=False)
    files = sorted(p.relative_to(tmp_path / "ref") for p in (tmp_path / "ref").rglob("*.bin"))
    for rel in files:
        assert (tmp_path / "out" / rel).read_bytes() == (tmp_path / "ref" / rel).read_bytes(), rel
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_uint32_when_vocab_exceeds_uint16(tmp_path, docs, big_tok_path):
    texts = docs["github"][:30] + ["a token beyond uint16: <extra_69999> and <extra_0>"]
    _write_jsonl(tmp_path / "raw.jsonl", [_record("github", t) for t in texts])
    meta = prepare_corpus(tmp_path / "raw.jsonl", tmp_path / "out", big_tok_path, val_fraction=0.3,
                          test_fraction=0.3, progress=False)
    assert meta["dtype"] == "uint32" and meta["vocab_size"] == 70400
    stream = np.concatenate([np.fromfile(tmp_path / "out" / "github" / f"{s}.bin", dtype=np.uint32) for s in SPLITS])
    assert stream.max() == 70399 and len(stream) == sum(meta["groups"]["github"].values())
    expected = {"github": {s: [t for t in texts if _hash_split(t, 0, 0.3, 0.3) == s] for s in SPLITS}}
    _check_shards(tmp_path / "out", big_tok_path, expected, dtype="uint32")


def test_load_tokenizer_specs(tmp_path, tok_path, monkeypatch):
    assert load_tokenizer(tok_path).get_vocab_size() == 400
    assert eos_id(load_tokenizer(tok_path.parent)) == 0
    # A model id resolves through the Hugging Face cache (offline in the tests: HF_HUB_OFFLINE=1).
    import huggingface_hub.constants as hf_constants

    snap = tmp_path / "hub" / "models--acme--tiny" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "tokenizer.json").write_bytes(tok_path.read_bytes())
    (tmp_path / "hub" / "models--acme--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert tokenizer_sha256("acme/tiny") == tokenizer_sha256(tok_path)
    with pytest.raises(UsageError, match="--tokenizer"):
        load_tokenizer("acme/absent")
    no_eos = Tokenizer(models.BPE())
    with pytest.raises(UsageError, match="end-of-document"):
        eos_id(no_eos)


def test_detect_layout_of_prepared_shards(tmp_path):
    (tmp_path / "paper" / "arxiv").mkdir(parents=True)
    (tmp_path / "paper" / "arxiv" / "train.bin").write_bytes(b"\0\0")
    assert detect_layout(tmp_path / "paper") == "shards"
    with pytest.raises(UsageError, match="does not exist"):
        detect_layout(tmp_path / "nowhere")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "data.prepare", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, docs, tok_path, big_tok_path):
    """name -> (CLI arguments, output dir, text the error must contain)."""
    base = tmp_path_factory.mktemp("bad")
    _jsonl_corpus(base / "raw", docs, ["arxiv", "book"])
    _write_jsonl(base / "broken" / "a.jsonl", [_record("arxiv", t) for t in docs["arxiv"][:20]] + ['{"text": 1'])
    prepare_corpus(base / "raw", base / "taken", tok_path, val_fraction=0.2, test_fraction=0.2, progress=False)
    ok = ["--val_fraction", "0.2", "--test_fraction", "0.2"]
    cases = {
        "missing_input": (["--input", base / "nowhere", "--tokenizer", tok_path], "nowhere"),
        "unknown_group": (["--input", base / "raw", "--tokenizer", tok_path, "--groups", "arxiv", "reddit"],
                          "valid groups are arxiv, book"),
        "group_without_docs": (["--input", base / "raw", "--tokenizer", tok_path, "--groups", "wikipedia", *ok],
                               "'wikipedia' has no documents"),
        "empty_val_split": (["--input", base / "raw", "--tokenizer", tok_path, "--val_fraction", "0.001"],
                            "raise --val_fraction"),
        "malformed_strict": (["--input", base / "broken", "--tokenizer", tok_path, "--strict", *ok], "a.jsonl:21"),
        "uint16_too_small": (["--input", base / "raw", "--tokenizer", big_tok_path, "--dtype", "uint16", *ok],
                             "--dtype uint16"),
        "tokenizer_missing": (["--input", base / "raw", "--tokenizer", base / "no_tokenizer.json", *ok],
                              "--tokenizer"),
        "other_fingerprint": (["--input", base / "raw", "--tokenizer", tok_path, "--seed", "5", *ok], "--overwrite"),
    }
    return base, cases


@pytest.mark.parametrize("case", ["missing_input", "unknown_group", "group_without_docs", "empty_val_split",
                                  "malformed_strict", "uint16_too_small", "tokenizer_missing", "other_fingerprint"])
def test_cli_bad_input_one_line_exit_2(bad_inputs, case):
    base, cases = bad_inputs
    args, needle = cases[case]
    out = base / ("taken" if case == "other_fingerprint" else f"out_{case}")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} if out.exists() else {}
    res = _cli(*args, "--output", out)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], res.stderr
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} if out.exists() else {}
    assert after == before  # nothing written, nothing half-written, earlier shards untouched
    assert out.exists() == (case == "other_fingerprint")  # not even an empty output directory


def test_cli_skips_malformed_lines_with_one_warning(bad_inputs, tok_path):
    base, _ = bad_inputs
    res = _cli("--input", base / "broken", "--output", base / "out_lenient", "--tokenizer", tok_path,
               "--val_fraction", "0.2", "--test_fraction", "0.2")
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().splitlines() == [l for l in res.stderr.strip().splitlines() if l.startswith("warning")]
    assert "1 malformed JSON line" in res.stderr and "a.jsonl:21" in res.stderr
    assert res.stdout.startswith("prepared ") and "MB/s" in res.stdout
    assert json.loads((base / "out_lenient" / "meta.json").read_text())["skipped_lines"] == 1


def test_sharded_preparation_merges_to_the_one_machine_bytes(tmp_path, docs, tok_path):
    """Three machines each prepare a contiguous block of the input files (--shard i/3); --merge joins them into
    shards and a meta.json equal to a one-machine preparation's, byte for byte."""
    raw = tmp_path / "raw"
    order = [(g, t) for g in GROUP_MODULES for t in docs[g]]
    random.Random(2).shuffle(order)
    for i in range(4):  # four files of interleaved groups, one of them compressed
        name = "c.jsonl.zst" if i == 2 else f"{'abcd'[i]}.jsonl"
        _write_jsonl(raw / name, [_record(g, t) for g, t in order[i::4]])
    common = ["--input", raw, "--tokenizer", tok_path, "--val_fraction", "0.2", "--test_fraction", "0.2",
              "--no_progress"]
    prep.main([*map(str, common), "--output", str(tmp_path / "whole")])
    for i in range(3):
        prep.main([*map(str, common), "--output", str(tmp_path / f"part{i}"), "--shard", f"{i}/3"])
    parts = [json.load(open(tmp_path / f"part{i}" / "meta.json"))["part"]["files"] for i in range(3)]
    assert [len(p) for p in parts] == [1, 1, 2] and sum(parts, []) == ["a.jsonl", "b.jsonl", "c.jsonl.zst", "d.jsonl"]
    prep.main(["--merge", *(str(tmp_path / f"part{i}") for i in (2, 0, 1)), "--output", str(tmp_path / "merged"),
               "--no_progress"])
    whole = sorted(p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*") if p.is_file())
    merged = sorted(p.relative_to(tmp_path / "merged") for p in (tmp_path / "merged").rglob("*") if p.is_file())
    assert whole == merged and len(whole) == 1 + 3 * len(GROUP_MODULES)
    for rel in whole:
        if rel.name == "meta.json":
            assert json.load(open(tmp_path / "whole" / rel)) == json.load(open(tmp_path / "merged" / rel))
        else:
            assert (tmp_path / "whole" / rel).read_bytes() == (tmp_path / "merged" / rel).read_bytes(), rel


def test_sharded_preparation_refusals(tmp_path, docs, tok_path, capsys):
    from data.shards import ShardSet

    _jsonl_corpus(tmp_path / "raw", docs, list(GROUP_MODULES))
    common = ["--input", str(tmp_path / "raw"), "--tokenizer", str(tok_path), "--val_fraction", "0.2",
              "--test_fraction", "0.2", "--no_progress"]
    prep.main(common + ["--output", str(tmp_path / "p0"), "--shard", "0/2"])
    with pytest.raises(UsageError, match="is part 0 of 2 of a sharded preparation"):
        ShardSet.open(tmp_path / "p0")
    for argv, needle in (
        (["--merge", str(tmp_path / "p0"), "--output", str(tmp_path / "m")], "parts 1 of 2 are missing"),
        (common + ["--output", str(tmp_path / "x"), "--shard", "2/2"], "I must lie in 0..N-1"),
        (common + ["--output", str(tmp_path / "x"), "--shard", "0/3"], "only 2 file(s)"),
        (common + ["--output", str(tmp_path / "x"), "--shard", "half"], "write it as I/N"),
        (["--output", str(tmp_path / "x")], "--input and --tokenizer required"),
    ):
        with pytest.raises(SystemExit) as exc:
            prep.main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and len(err) == 1 and needle in err[0], err
    assert not (tmp_path / "m").exists() and not (tmp_path / "x").exists()

"""The embedded demo corpus (data/demo): real text for five SlimPajama stand-in groups and its tokenizer.

Checks what the rest of the project relies on: one readable .jsonl.zst per group in SlimPajama's line
format, enough documents that a 5%/5% val/test split is not empty, a 4096-entry byte-level BPE whose
EOS is id 0 and which round-trips text exactly, and the repository size budget.
"""

import json
from functools import lru_cache
from pathlib import Path

import pytest
import zstandard

from data.groups import SUBSET2META

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
GROUPS = ["arxiv", "book", "github", "stackexchange", "wikipedia"]


@lru_cache(maxsize=None)
def load(group: str) -> tuple[dict, ...]:
    raw = zstandard.ZstdDecompressor().stream_reader((DEMO / "corpus" / f"{group}.jsonl.zst").read_bytes()).read()
    return tuple(json.loads(line) for line in raw.decode("utf-8").splitlines())


@lru_cache(maxsize=None)
def tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(DEMO / "tokenizer.json"))


@pytest.mark.parametrize("group", GROUPS)
def test_group_file_lines_and_size(group):
    docs = load(group)
    assert len(docs) >= 150, "too few documents for a 5%/5% val/test hash split"
    for doc in docs:
        assert isinstance(doc["text"], str) and doc["text"].strip()
        assert doc["meta"]["redpajama_set_name"] == SUBSET2META[group]
    assert sum(len(d["text"].encode("utf-8")) for d in docs) >= 1_000_000


def test_documents_are_not_duplicated_across_groups():
    texts = [d["text"] for g in GROUPS for d in load(g)]
    assert len(set(texts)) == len(texts)


def test_tokenizer_vocab_and_eos():
    tok = tokenizer()
    assert tok.get_vocab_size() == 4096
    assert tok.token_to_id("<|endoftext|>") == 0
    assert tok.post_processor is None  # EOS goes between documents at preparation, never added here
    assert tok.encode("hello<|endoftext|>world").ids.count(0) == 1


@pytest.mark.parametrize("group", GROUPS)
def test_tokenizer_round_trips_group_text(group):
    tok = tokenizer()
    docs = load(group)
    sample = [d["text"] for d in docs[:: max(1, len(docs) // 25)]]  # ~25 documents spread over the file
    for text, enc in zip(sample, tok.encode_batch(sample)):
        assert tok.decode(enc.ids, skip_special_tokens=False) == text
        assert len(enc.ids) < len(text.encode("utf-8"))  # the merges learnt something for this group


def test_demo_dir_fits_the_budget():
    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert total < 6.5e6

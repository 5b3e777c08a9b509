"""Shared test set-up: one torch thread (two threads on a 2-core box can be many times slower), the
repository root on sys.path."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # data-only tests do not need torch
    pass


import io  # noqa: E402
import json  # noqa: E402

import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end runs of main.py or of pipeline scripts")


def _demo_subset(out_dir, groups, docs_per_group, max_chars):
    """Real text for tests: the first documents of each demo group, as one SlimPajama-format .jsonl."""
    import zstandard

    from data.demo import CORPUS_DIR

    path = os.path.join(out_dir, "subset.jsonl")
    with open(path, "w") as out:
        for group in groups:
            with open(os.path.join(CORPUS_DIR, f"{group}.jsonl.zst"), "rb") as fh:
                reader = zstandard.ZstdDecompressor().stream_reader(fh)
                lines = io.TextIOWrapper(reader, encoding="utf-8")
                for i, line in enumerate(lines):
                    if i >= docs_per_group:
                        break
                    record = json.loads(line)
                    record["text"] = record["text"][:max_chars]
                    out.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """Prepared shards of three real-text groups (arxiv, book, stackexchange), demo tokenizer."""
    from data.demo import TOKENIZER_PATH
    from data.prepare import prepare_corpus

    root = tmp_path_factory.mktemp("tiny_shards")
    raw = _demo_subset(str(root), ["arxiv", "book", "stackexchange"], docs_per_group=120, max_chars=3000)
    out = os.path.join(root, "shards")
    prepare_corpus(raw, out, TOKENIZER_PATH, num_proc=1, seed=0, val_fraction=0.15, test_fraction=0.15,
                   progress=False)
    return out

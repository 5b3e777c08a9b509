"""The embedded demo corpus (real text, SlimPajama-format .jsonl.zst, one file per group) and its
byte-level BPE tokenizer. Provenance and licences: README.md beside this file. Prepared shards are
built on first use into a cache (`data.bundle.cache_root`), never committed."""
import os

DEMO_DIR = os.path.dirname(os.path.abspath(__file__))
CORPUS_DIR = os.path.join(DEMO_DIR, "corpus")
TOKENIZER_PATH = os.path.join(DEMO_DIR, "tokenizer.json")

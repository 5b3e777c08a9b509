"""Tokenizer loading for data preparation.

A tokenizer is given as `--tokenizer SPEC`, where SPEC is one of:

- the path of a `tokenizer.json` file (the `tokenizers` library's serialisation);
- a directory that contains a `tokenizer.json` (e.g. a saved Hugging Face model);
- a Hugging Face model id (`EleutherAI/pythia-160m`): its `tokenizer.json` through the Hugging Face
  cache, downloaded when the Hub is reachable, read from the cache when offline (HF_HUB_OFFLINE=1).
  Preparations are keyed by the file's sha256, so where it came from does not matter.

Only the fast (`tokenizers`) serialisation is supported: it is what batch tokenization across processes
needs, and every model the paper uses ships one.
"""
import hashlib
import os
from pathlib import Path

from tokenizers import Tokenizer

import hub
from errors import UsageError

# Names that tokenizers commonly give their end-of-document token, most common first.
EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>")


def _from_hub(name: str):
    """(path of model `name`'s tokenizer.json through the Hugging Face cache, None) or (None, the error)."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(name, "tokenizer.json")), None
    except Exception as err:  # not a repo id (a mistyped path), not cached offline, no such file: all "not found"
        return None, err


def resolve_tokenizer_file(spec) -> Path:
    """The `tokenizer.json` file that SPEC names (see the module docstring); UsageError if none."""
    path = Path(os.path.expanduser(str(spec)))
    if path.is_file():
        return path
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return path / "tokenizer.json"
        raise UsageError(f"--tokenizer {spec}: the directory holds no tokenizer.json; pass the path of a "
                         "tokenizer.json file or a directory that contains one")
    found, err = _from_hub(str(spec))
    if found is not None:
        return found
    raise UsageError(hub.not_available("--tokenizer", str(spec), "not a tokenizer.json file or a folder holding one; "
                                       "as a model id, its tokenizer.json", err))


def load_tokenizer(spec) -> Tokenizer:
    """Load the fast tokenizer that SPEC names; UsageError naming `--tokenizer` if it cannot."""
    path = resolve_tokenizer_file(spec)
    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # the Rust side raises plain Exception for unreadable JSON
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"--tokenizer {spec}: {path} is not a valid tokenizer.json ({first_line})") from None


def tokenizer_sha256(spec) -> str:
    """Hex sha256 of the bytes of the `tokenizer.json` that SPEC names (identifies the tokenization)."""
    digest = hashlib.sha256()
    with open(resolve_tokenizer_file(spec), "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def eos_id(tokenizer: Tokenizer) -> int:
    """Id of the tokenizer's end-of-document token (first of EOS_CANDIDATES present); UsageError if none."""
    for token in EOS_CANDIDATES:
        tid = tokenizer.token_to_id(token)
        if tid is not None:
            return int(tid)
    raise UsageError("--tokenizer has no end-of-document token (looked for "
                     + ", ".join(EOS_CANDIDATES) + "); documents must be separated by one, so add it as a "
                     "special token")


def vocab_size(tokenizer: Tokenizer) -> int:
    """Number of token ids, added tokens included (the largest id + 1 for every tokenizer we know)."""
    return int(tokenizer.get_vocab_size(with_added_tokens=True))


def data_tokenizer_file(spec, sha256=None):
    """The tokenizer.json the run's data was made with, or None when it cannot be found here (data
    prepared elsewhere) or is not the same file (`sha256` recorded at preparation differs)."""
    if not spec:
        return None
    try:
        path = resolve_tokenizer_file(spec)
        if sha256 and tokenizer_sha256(spec) != sha256:
            return None
    except (UsageError, OSError):
        return None
    return str(path)

"""Tokenizer loading for data preparation.

A tokenizer is given as `--tokenizer SPEC`, where SPEC is one of:

- the path of a `tokenizer.json` file (the `tokenizers` library's serialisation);
- a directory that contains a `tokenizer.json` (e.g. a saved Hugging Face model);
- a Hugging Face model name (`EleutherAI/pythia-160m`), resolved from the local Hugging Face cache only:
  the hub is never contacted, so preparation works offline and is reproducible.

Only the fast (`tokenizers`) serialisation is supported: it is what batch tokenization across processes
needs, and every model the paper uses ships one.
"""
import hashlib
import os
from pathlib import Path

from tokenizers import Tokenizer

from errors import UsageError

# Names that tokenizers commonly give their end-of-document token, most common first.
EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>")


def _from_hf_cache(name: str) -> Path | None:
    """The cached `tokenizer.json` of model `name`, or None; never touches the network."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    try:
        found = try_to_load_from_cache(name, "tokenizer.json")
    except Exception:  # an invalid repo id (e.g. a mistyped path) is just "not found"
        return None
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


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
    cached = _from_hf_cache(str(spec))
    if cached is not None:
        return cached
    raise UsageError(f"--tokenizer {spec}: not a tokenizer.json file, a directory holding one, or a model "
                     "name in the local Hugging Face cache (the hub is not contacted); pass the path of a "
                     "tokenizer.json")


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

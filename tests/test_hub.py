"""Models by Hub id, the way transformers loads them: through the Hugging Face cache, a revision per Pythia
checkpoint (--checkpoint N -> stepN), offline from the cache (the tests run with HF_HUB_OFFLINE=1 against
a cache layout they build), and one line when a model is neither cached nor reachable."""
import json
import os

import pytest
import torch

from errors import UsageError
from tests.test_main_e2e import paper_flags

REPO = "acme/neox-mini"


def _snapshot(cache, revision_names, commit, seed):
    """A cached snapshot of a small GPT-NeoX (vocabulary 4096, the test shards') under refs `revision_names`."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    config = GPTNeoXConfig(vocab_size=4096, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=128)
    model = GPTNeoXForCausalLM(config)
    repo = cache / f"models--{REPO.replace('/', '--')}"
    model.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    for name in revision_names:
        (repo / "refs" / name).write_text(commit)
    return model


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    cache = tmp_path / "hub"
    models = {"step1000": _snapshot(cache, ["step1000"], "a" * 40, seed=1),
              "main": _snapshot(cache, ["main"], "b" * 40, seed=2)}
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert constants.HF_HUB_OFFLINE, "the tests must never reach the Hub (tests/conftest.py sets HF_HUB_OFFLINE)"
    return models


def _build(name, checkpoint):
    from trainer.models import build_model

    return build_model(name, checkpoint, data_vocab_size=4096, context_length=64, attn_implementation="sdpa",
                       dtype=torch.float32)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_pythia_style_revision_and_the_latest_come_from_the_cache(hub_cache):
    assert _same_weights(_build(REPO, 1000), hub_cache["step1000"])  # --checkpoint 1000 -> revision step1000
    assert _same_weights(_build(REPO, None), hub_cache["main"])  # no --checkpoint: the latest weights
    fresh = _build(REPO, 0)  # from scratch with the Hub model's (cached) config: new weights
    assert fresh.config.hidden_size == 32 and not _same_weights(fresh, hub_cache["main"])


@pytest.mark.parametrize("name, checkpoint, what", [
    (REPO, 2000, "the pretrained weights (revision step2000)"),
    ("acme/absent", 1000, "the pretrained weights (revision step1000)"),
    ("acme/absent", 0, "its config.json"),
])
def test_a_model_neither_cached_nor_reachable_is_one_line(hub_cache, name, checkpoint, what):
    with pytest.raises(UsageError) as err:
        _build(name, checkpoint)
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"--model {name}: ") and what in line
    assert "HF_HUB_OFFLINE is set" in line and "pass a local folder" in line and "hf download" in line


def test_main_trains_a_cached_hub_revision(hub_cache, tiny_shards, tmp_path):
    import main

    out = str(tmp_path / "out")
    flags = paper_flags(tiny_shards, out, "--max_steps", "2", "--max_test_samples", "4", "--run_name", "r")
    flags[flags.index("--model") + 1], flags[flags.index("--checkpoint") + 1] = REPO, "1000"
    main.main(flags)
    results = json.load(open(os.path.join(out, "r", "results.json")))
    config = json.load(open(os.path.join(out, "r", "config.json")))
    assert results["status"] == "complete" and (config["model_name"], config["checkpoint"]) == (REPO, 1000)

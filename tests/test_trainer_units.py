"""Unit tests of the trainer's pieces: schedules, optimizer groups, models, checkpoints, outputs."""
import json
import math
import os

import numpy as np
import pytest
import torch

from errors import UsageError
from trainer import checkpoint as ckpt
from trainer.mixture import load_proportions_file
from trainer.models import build_model, bundled_config
from trainer.optim import build_optimizer, build_scheduler, linear_warmup_cosine
from trainer.outputs import MetricsLog
from trainer.run_dir import RunDir, run_base_name


def tiny_model(vocab=300):
    torch.manual_seed(0)
    return build_model("tiny", 0, data_vocab_size=vocab, context_length=32, attn_implementation="sdpa",
                       dtype=torch.float32)


def test_paper_schedule_values():
    # lr(0) = 1e-7, lr(500) = 5e-4, lr(2750) = 3e-4, lr(5000) = 1e-4, held after
    f = lambda s: linear_warmup_cosine(s, 5e-4, 1e-4, 500, 5000)  # noqa: E731
    assert f(0) == pytest.approx(1e-7)
    assert f(500) == pytest.approx(5e-4)
    assert f(2750) == pytest.approx(3e-4)
    assert f(5000) == pytest.approx(1e-4)
    assert f(6000) == pytest.approx(1e-4)


def test_scheduler_drives_optimizer_lr():
    model = tiny_model()
    opt = build_optimizer(model, 5e-4)
    sched = build_scheduler(opt, "linear_warmup_cosine", peak=5e-4, warmup=10, total=100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-7)
    assert lrs[10] == pytest.approx(5e-4)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    sched2 = build_scheduler(build_optimizer(model, 1e-3), "cosine", peak=1e-3, warmup=0, total=10, end_lr=0.0)
    assert sched2.get_last_lr()[0] == pytest.approx(1e-3)
    build_scheduler(build_optimizer(model, 1e-3), "linear", peak=1e-3, warmup=2, total=10)
    with pytest.raises(UsageError, match="--lr_scheduler"):
        build_scheduler(opt, "no_such_schedule", peak=1e-3, warmup=0, total=10)


def test_weight_decay_skips_biases_and_norms():
    model = tiny_model()
    opt = build_optimizer(model, 1e-3)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"])
    assert all(p.ndim == 1 for p in no_decay["params"])
    assert opt.defaults["eps"] == 1e-8


def test_bundled_configs_and_vocab_check():
    cfg = bundled_config("EleutherAI/pythia-160m")
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.vocab_size) == (768, 12, 12, 50304)
    assert bundled_config("pythia-410m-deduped").num_hidden_layers == 24
    assert bundled_config("tiny", 4000).vocab_size == 4032  # rounded up to a multiple of 64
    with pytest.raises(UsageError, match="larger than the model"):
        build_model("EleutherAI/pythia-14m", 0, data_vocab_size=60000, context_length=64,
                    attn_implementation="sdpa", dtype=torch.float32)
    with pytest.raises(UsageError, match="pretrained weights"):
        build_model("EleutherAI/pythia-14m", 1000, data_vocab_size=100, context_length=64,
                    attn_implementation="sdpa", dtype=torch.float32)


def test_pretrained_from_local_path(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    loaded = build_model(str(tmp_path / "m"), None, data_vocab_size=300, context_length=32,
                         attn_implementation="sdpa", dtype=torch.float32)
    for a, b in zip(model.parameters(), loaded.parameters()):
        assert torch.equal(a, b)


def _state(model):
    opt = build_optimizer(model, 1e-3)
    sched = build_scheduler(opt, "cosine", peak=1e-3, warmup=0, total=10)
    x = torch.randint(0, 300, (2, 16))
    model(input_ids=x, labels=x).loss.backward()
    opt.step()
    sched.step()
    return opt, sched


def test_checkpoint_roundtrip_keep_and_corruption(tmp_path):
    model = tiny_model()
    opt, sched = _state(model)
    root = tmp_path / "checkpoints"
    for step in (1, 2, 3):
        ckpt.save_checkpoint(str(root), step, model, opt, sched, {"tokens": step, "sampler": {"a": step}}, keep=2)
    names = sorted(os.listdir(root))
    assert names == ["step_00000002", "step_00000003"]
    # truncate the newest model file: detected, and the previous checkpoint is used
    newest = root / "step_00000003" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(UserWarning, match="incomplete or corrupt"):
        latest = ckpt.latest_valid_checkpoint(str(root))
    assert latest.endswith("step_00000002")
    other = tiny_model(300)
    torch.nn.init.zeros_(other.get_input_embeddings().weight)
    opt2, sched2 = _state(other)
    state = ckpt.load_checkpoint(latest, other, opt2, sched2)
    assert state["step"] == 2 and state["sampler"] == {"a": 2}
    for a, b in zip(model.parameters(), other.parameters()):
        assert torch.equal(a, b)
    # a leftover temporary directory (a crash mid-write) is never taken for a checkpoint
    (root / ".tmp_step_00000009_1").mkdir()
    with pytest.warns(UserWarning):
        assert ckpt.latest_valid_checkpoint(str(root)).endswith("step_00000002")


def test_proportions_file_forms(tmp_path):
    groups = ["arxiv", "book"]
    cases = {"list.json": [1, 3], "dict.json": {"book": 3, "arxiv": 1},
             "learned.json": {"average_weights": {"arxiv": 0.25, "book": 0.75}}}
    for name, obj in cases.items():
        (tmp_path / name).write_text(json.dumps(obj))
        assert np.allclose(load_proportions_file(str(tmp_path / name), groups), [0.25, 0.75])
    (tmp_path / "bad.json").write_text("{not json")
    for path, match in ((tmp_path / "bad.json", "not valid JSON"), (tmp_path / "none.json", "cannot read")):
        with pytest.raises(UsageError, match=match):
            load_proportions_file(str(path), groups)
    (tmp_path / "short.json").write_text(json.dumps({"arxiv": 1}))
    with pytest.raises(UsageError, match="no weight for group"):
        load_proportions_file(str(tmp_path / "short.json"), groups)
    (tmp_path / "zero.json").write_text(json.dumps([0, 0]))
    with pytest.raises(UsageError, match="all zero"):
        load_proportions_file(str(tmp_path / "zero.json"), groups)


def test_run_names_unique_and_resumable(tmp_path):
    identity = {"task_name": "slimpj", "method": "aioli", "groups": ["arxiv", "book"], "lr": 1e-3}
    config = {"task_name": "slimpj", "method": "aioli", "groups": ["arxiv", "book"], "selection_seed": 0,
              "identity": identity}
    base = run_base_name(config)
    assert base.startswith("slimpj-aioli-arxiv+book-seed0-")
    first = RunDir.open(str(tmp_path), config, None, "new")
    assert first.path == str(tmp_path / base)
    first.create({})
    first.release()
    second = RunDir.open(str(tmp_path), config, None, "new")
    assert second.path == first.path + "-2"
    second.abandon()  # refused before its config.json: the folder it made is gone
    assert not os.path.exists(second.path)
    again = RunDir.open(str(tmp_path), config, None, "resume")
    assert again.path == first.path
    again.release()
    assert run_base_name(dict(config, identity=dict(identity, lr=2e-3))) != base
    with pytest.raises(UsageError, match="--resume"):
        RunDir.open(str(tmp_path), dict(config, identity=dict(identity, lr=5.0)), None, "resume")


def test_metrics_truncation_drops_torn_and_later_lines(tmp_path):
    log = MetricsLog(str(tmp_path / "metrics.jsonl"))
    for step in (10, 20, 30):
        log.write({"step": step, "train_loss": math.nan if step == 30 else 1.0})
    with open(log.path, "a") as fh:
        fh.write('{"step": 4')  # torn line of a killed process
    log.truncate_after(20)
    lines = [json.loads(x) for x in open(log.path)]
    assert [x["step"] for x in lines] == [10, 20]


def test_run_identity_holds_only_the_flags_the_run_uses():
    """A run's automatic name hashes its identity: flags at their defaults and other methods' flags are
    not in it, so adding a flag (or giving one of another method) never renames a run."""
    from trainer.config import resolve, run_identity

    def identity(*argv):
        cfg = resolve(["--max_steps", "10", "--slice_list", "book", "github", *argv])
        return run_identity(cfg, ["book", "github"], [0.5, 0.5])

    plain = identity()
    assert plain["method"] == "static" and "lr" in plain  # the demo's lr differs from the parser's default
    assert "lp_rounds" not in plain and "doge_mu" not in plain
    assert identity("--lp_rounds", "3", "--doge_mu", "0.5") == plain  # other methods' flags: unused here
    assert identity("--gradient_accumulation_steps", "1") == plain  # an explicit default
    assert identity("--log_every", "3", "--output_dir", "elsewhere") == plain  # logging only
    assert identity("--lr", "1e-3") != plain
    aioli = identity("--aioli", "--lp_rounds", "3")
    assert aioli["method"] == "aioli" and aioli["lp_rounds"] == 3 and "doge_mu" not in aioli
    assert identity("--aioli", "--lp_rounds", "3", "--doge_mu", "0.5") == aioli


def test_mfu_in_metrics_from_the_models_flops_and_the_given_peak(tiny_shards, tmp_path):
    """MFU = tokens/s x training FLOPs per token / peak FLOP/s; FLOPs per token counted by hand here for the
    tiny config (width 128, 2 layers, MLP 512, the demo vocabulary of 4096, context 64)."""
    import main

    out = tmp_path / "o"
    main.main(["--train_data_dir", tiny_shards, "--slice_list", "arxiv", "book", "--model", "tiny", "--checkpoint",
               "0", "--context_length", "64", "--batch_size", "4", "--max_steps", "4", "--log_every", "2",
               "--max_eval_samples", "2", "--max_test_samples", "2", "--peak_tflops", "0.5", "--output_dir",
               str(out), "--run_name", "r", "--no_progress"])
    weights = 2 * (4 * 128 * 128 + 2 * 128 * 512) + 128 * 4096
    per_token = 6 * weights + 12 * 2 * 128 * 64
    lines = [json.loads(x) for x in open(out / "r" / "metrics.jsonl") if '"tokens_per_s"' in x]
    assert lines
    for line in lines:
        assert line["mfu"] == pytest.approx(line["tokens_per_s"] * per_token / 0.5e12, rel=1e-9)
    main.main(["--train_data_dir", tiny_shards, "--slice_list", "arxiv", "book", "--model", "tiny", "--checkpoint",
               "0", "--context_length", "64", "--batch_size", "4", "--max_steps", "2", "--max_eval_samples", "2",
               "--max_test_samples", "2", "--output_dir", str(out), "--run_name", "cpu", "--no_progress"])
    assert all("mfu" not in json.loads(x) for x in open(out / "cpu" / "metrics.jsonl")), "no peak known on a CPU"


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_evaluation_packs_the_groups_into_shared_batches_without_changing_their_losses(batch_size):
    """Rows of all groups share batches (a batch may hold two groups, padded rows of other widths): each
    group's loss is still the token mean of its own rows, as one row at a time computes it."""
    from contextlib import nullcontext

    from data.bundle import IGNORE
    from trainer.evaluation import Evaluator, token_losses

    model = tiny_model().eval()
    rng = np.random.default_rng(0)

    def padded(n, width, lengths):
        ids = rng.integers(1, 300, (n, width))
        mask = (np.arange(width)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)
        labels = np.where(mask == 1, ids, IGNORE)
        labels[:, :2] = IGNORE  # a prompt that is not scored
        return {"input_ids": ids * mask, "labels": labels, "attention_mask": mask}

    sources = {"a": padded(5, 20, [20, 7, 12, 20, 9]), "b": padded(2, 31, [31, 15]), "c": padded(4, 10, [10] * 4)}
    evaluator = Evaluator(list(sources), lambda split, g, n: sources[g], batch_size, "cpu", nullcontext)
    got = evaluator.losses(model, "val")
    for i, source in enumerate(sources.values()):
        total = tokens = 0.0
        for r in range(len(source["input_ids"])):
            n = int(source["attention_mask"][r].sum())
            row = {key: torch.from_numpy(value[r:r + 1, :n]) for key, value in source.items()}
            with torch.inference_mode():
                losses, mask = token_losses(model, row, nullcontext)
            total, tokens = total + float((losses * mask).sum()), tokens + float(mask.sum())
        assert got[i] == pytest.approx(total / tokens, rel=1e-5)
    assert model.training is False

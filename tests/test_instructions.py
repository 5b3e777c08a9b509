"""Natural Instructions tasks (--task_name instruction) on a small real fixture: task files of both
schemas, seeded splits and their JSON cache, the answer mask (including a BPE merge across the
prompt/answer boundary), the loss, the sampler, errors, and whole runs of main.py."""
import contextlib
import json
import math
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from data import ni_tasks
from data.composition import BatchComposer
from data.demo import TOKENIZER_PATH
from data.bundle import gather_rows
from data.instruction_sampler import InstructionSampler, eval_arrays, pad_rows, select_examples
from data.sampler import MixtureSampler
from data.tokenization import load_tokenizer
from errors import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NI = os.path.join(ROOT, "tests", "fixtures", "natural-instructions")
TASKS = os.path.join(NI, "tasks")
SHORT = ["abductivenli", "mathqa", "piqa", "semeval", "sst2"]  # the fixture's five tasks


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(TOKENIZER_PATH)


def build(tok, cache, names=("sst2", "mathqa", "semeval"), seed=0, val=4, test=3):
    found = ni_tasks.resolve_tasks(TASKS, list(names), default_used=False)
    return [ni_tasks.load_or_build(g, stem, path, tok, "demo", str(cache), seed, val, test) for g, stem, path in found]


def examples(task, split, L=256, truncate_left=False):
    return select_examples(task.ids, task.starts, task.answer_start, task.split[split], L, truncate_left)


def decode(tok, ids):
    return tok.decode([int(i) for i in ids], skip_special_tokens=False)


def test_both_schemas_are_read():
    for stem, is_list in (("task363_sst2_polarity_classification", True),
                          ("task295_semeval_2020_task4_commonsense_reasoning", False)):
        path = os.path.join(TASKS, stem + ".json")
        assert isinstance(json.load(open(path))["Definition"], list) == is_list
        definition, instances = ni_tasks.read_task(path)
        assert isinstance(definition, str) and definition.startswith("In this task")
        assert len(instances) == 24 and all(isinstance(i, str) and outs for i, outs in instances)


def test_non_list_output_counts_as_no_output(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"Definition": "d", "Instances": [{"input": "a", "output": None},
                                                                 {"input": "b", "output": "yes"}]}))
    assert ni_tasks.read_task(str(path)) == ("d", [("a", []), ("b", ["yes"])])


def test_splits_are_deterministic_disjoint_and_round_trip_as_json(tok, tmp_path, monkeypatch):
    a = build(tok, tmp_path / "a")
    b = build(tok, tmp_path / "b")
    for ta, tb in zip(a, b):
        assert ta.split == tb.split and ta.meta["answer_choice"] == tb.meta["answer_choice"]
        parts = [set(ta.split[s]) for s in ("val", "test", "train")]
        assert [len(p) for p in parts] == [4, 3, 17]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert set().union(*parts) == set(range(24))
        on_disk = json.load(open(tmp_path / "a" / f"{ta.stem}.split.json"))
        assert on_disk["split"] == ta.split and on_disk["instance_index"] == list(range(24))
        with np.load(tmp_path / "a" / f"{ta.stem}.tokens.npz", allow_pickle=False) as z:
            np.testing.assert_array_equal(z["ids"], ta.ids)
    # a second build reads the cache: nothing is tokenized again, and it gives the same split
    monkeypatch.setattr(ni_tasks, "tokenize_pairs", lambda *x: pytest.fail("cache not used"))
    again = build(tok, tmp_path / "a")
    assert [t.split for t in again] == [t.split for t in a]
    monkeypatch.undo()
    other = build(tok, tmp_path / "c", seed=1)  # another seed: another split
    assert any(t.split != u.split for t, u in zip(a, other))


def test_small_tasks_shrink_val_and_test_keeping_half_for_training():
    assert ni_tasks.split_sizes(1000, 100, 100) == (100, 100, False)
    assert ni_tasks.split_sizes(24, 100, 100) == (6, 6, True)
    assert ni_tasks.split_sizes(286, 100, 100) == (71, 71, True)
    with pytest.raises(ValueError):
        ni_tasks.split_sizes(2, 100, 100)


def test_masked_tokens_are_exactly_the_answer(tok, tmp_path):
    for task in build(tok, tmp_path, names=SHORT):
        _, instances = ni_tasks.read_task(task.meta["task_file"])
        for split in ("train", "val"):
            ex, dropped = examples(task, split, L=4096)
            assert dropped == 0
            batch = eval_arrays(ex, None, pad_id=0)
            rows = task.split[split]
            for r, pos in enumerate(rows):
                inst = task.meta["instance_index"][pos]
                answer = " " + instances[inst][1][task.meta["answer_choice"][pos]].strip()
                labels = batch["labels"][r]
                assert decode(tok, labels[labels != -100]) == answer
                n = batch["attention_mask"][r].sum()
                prompt = decode(tok, batch["input_ids"][r, :n][labels[:n] == -100])
                assert prompt.endswith("\nOutput:") and "\n\nInput: " in prompt


def test_bpe_merge_across_the_boundary_goes_to_the_answer(tok):
    # the prompt ends inside a word: the demo BPE merges " wh" + "ich" into one token " which"
    definition, instances = ni_tasks.read_task(os.path.join(TASKS, "task363_sst2_polarity_classification.json"))
    prompt = ni_tasks.build_prompt(definition, instances[0][0]) + " wh"
    answer = "ich"
    enc = tok.encode(prompt + answer)
    ids, starts, answer_start = ni_tasks.tokenize_pairs(tok, [prompt], [answer])
    a = int(answer_start[0])
    s, e = enc.offsets[a]
    assert s < len(prompt) < e, "the constructed case must merge across the boundary"
    assert a < len(tok.encode(prompt).ids)  # counting the prompt's own tokens would miss it
    scored = decode(tok, ids[a:starts[1]])
    assert scored == " which" == (prompt + answer)[s:] and scored.endswith(answer)
    assert decode(tok, ids[:a]) + scored == prompt + answer
    # the ordinary case: the answer's leading space keeps the boundary between tokens
    prompt, answer = ni_tasks.build_prompt(definition, instances[0][0]), ni_tasks.build_answer("NEG")
    ids, starts, answer_start = ni_tasks.tokenize_pairs(tok, [prompt], [answer])
    assert decode(tok, ids[answer_start[0]:starts[1]]) == " NEG"


def tiny_model(vocab=4096):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    config = GPTNeoXConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=512, bos_token_id=0, eos_token_id=0)
    return GPTNeoXForCausalLM(config).eval()


def test_loss_ignores_prompt_and_padding(tok, tmp_path):
    from methods.base import StepContext, mean_token_loss
    from trainer.evaluation import token_losses

    task = build(tok, tmp_path)[0]
    ex, _ = examples(task, "train")
    parts = [(ex.ids[ex.start[i]:ex.start[i] + ex.length[i]], int(ex.answer[i])) for i in range(4)]
    model = tiny_model()
    ctx = StepContext(step=0, total_steps=1, groups=["x"],
                      token_losses=lambda m, b: token_losses(m, b, contextlib.nullcontext))

    def loss(batch):
        with torch.no_grad():
            return float(mean_token_loss(model, {k: torch.from_numpy(v) for k, v in batch.items()}, ctx))

    tight = pad_rows(parts, pad_id=0)
    assert tight["input_ids"].shape[1] == max(len(p) for p, _ in parts)  # padded to the longest, not L
    wide = pad_rows(parts + [(np.zeros(tight["input_ids"].shape[1] + 40, np.int64), 10 ** 6)], pad_id=0)
    wide = {k: v[:4] for k, v in wide.items()}  # the same 4 examples, 40 more pad positions each
    assert wide["input_ids"].shape[1] == tight["input_ids"].shape[1] + 40
    assert loss(wide) == pytest.approx(loss(tight), rel=1e-5)
    # by hand: mean cross-entropy over answer tokens only
    total, count = 0.0, 0
    for tokens, a in parts:
        with torch.no_grad():
            logits = model(input_ids=torch.from_numpy(np.asarray(tokens, np.int64))[None]).logits[0]
        ce = torch.nn.functional.cross_entropy(logits[a - 1:-1], torch.from_numpy(np.asarray(tokens[a:], np.int64)),
                                               reduction="sum")
        total, count = total + float(ce), count + len(tokens) - a
    assert loss(tight) == pytest.approx(total / count, rel=1e-4)
    # --train_on_prompt scores everything but padding
    full = pad_rows(parts, pad_id=0, train_on_prompt=True)
    assert (full["labels"] != -100).sum() == full["attention_mask"].sum()
    # rows gathered across differently padded sources (DoGE's validation batch) keep their loss
    sources = [pad_rows(parts[:2], 0), pad_rows(parts[2:], 0)]
    assert loss(gather_rows(sources, [(0, 0), (0, 1), (1, 0), (1, 1)])) == pytest.approx(loss(tight), rel=1e-5)


def test_long_examples_are_dropped_or_truncated_from_the_left(tok, tmp_path):
    task = build(tok, tmp_path, names=["abductivenli"])[0]
    full, _ = examples(task, "train", L=4096)
    L = int(np.median(full.length))
    kept, dropped = examples(task, "train", L=L)
    assert dropped == int((full.length > L).sum()) > 0 and len(kept) + dropped == len(full)
    cut, lost = examples(task, "train", L=L, truncate_left=True)
    assert lost == 0 and len(cut) == len(full) and cut.length.max() <= L
    a, b = eval_arrays(full, None, 0), eval_arrays(cut, None, 0)
    for r in range(len(full)):  # the answer is intact, the prompt lost its beginning
        assert list(a["labels"][r][a["labels"][r] != -100]) == list(b["labels"][r][b["labels"][r] != -100])


def sampler_tasks(tok, cache):
    return {t.group: examples(t, "train")[0] for t in build(tok, cache)}


def test_sampler_composition_epochs_and_state_round_trip(tok, tmp_path):
    tasks = sampler_tasks(tok, tmp_path)
    w = np.array([0.5, 0.25, 0.25])
    s = InstructionSampler(tasks, 8, seed=3, weights=w, pad_id=0)
    seen = {g: [] for g in tasks}
    for n in range(1, 9):
        b = s.next_batch()
        c = np.bincount(b["group_ids"], minlength=3)
        assert np.all(np.abs(c - w * 8) < 1) and c.sum() == 8
        width = b["attention_mask"].sum(1).max()
        assert b["input_ids"].shape == (8, width) and np.all(b["input_ids"][b["attention_mask"] == 0] == 0)
        assert np.all(b["labels"][b["attention_mask"] == 0] == -100)
        for row, mask, g in zip(b["input_ids"], b["attention_mask"], b["group_ids"]):
            seen[s.groups[g]].append(row[mask == 1].tobytes())
    # 17 training examples per task: sst2 drew 32 = a full epoch, then a reshuffled one
    assert len(set(seen["sst2"][:17])) == 17 and s.epochs["sst2"] == 1
    state = json.loads(json.dumps(s.state_dict()))
    expect = [s.next_batch(exact=True) for _ in range(3)]
    s.set_weights([0.1, 0.1, 0.8])
    expect += [s.next_batch() for _ in range(3)]
    t = InstructionSampler(tasks, 8, seed=3, pad_id=0)
    t.load_state_dict(state)
    got = [t.next_batch(exact=True) for _ in range(3)]
    t.set_weights([0.1, 0.1, 0.8])
    got += [t.next_batch() for _ in range(3)]
    for x, y in zip(expect, got):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    m = InstructionSampler(tasks, 8, seed=3, sampling="multinomial", weights=[0, 1, 0], pad_id=0)
    assert set(m.next_batch()["group_ids"]) == {1}
    m.sampling = "exact"  # one attribute, the composer's, as on MixtureSampler
    assert m.sampling == m._composer.sampling == "exact"
    with pytest.raises(UsageError):
        InstructionSampler(tasks, 4, seed=3, pad_id=0).load_state_dict(state)


def test_composition_is_the_window_samplers():
    """BatchComposer draws the same group ids as MixtureSampler: one rule for both kinds of data."""
    sources = {g: np.arange(64 * 40, dtype=np.uint16) for g in ("a", "b", "c")}
    for sampling in ("exact", "multinomial"):
        ms = MixtureSampler(sources, 64, 8, seed=5, sampling=sampling)
        bc = BatchComposer(list(sources), 8, seed=5, sampling=sampling)
        for step in range(40):
            if step % 7 == 0:
                w = np.random.default_rng(step).dirichlet(np.ones(3))
                ms.set_weights(w), bc.set_weights(w)
            exact = True if step % 5 == 0 else None
            np.testing.assert_array_equal(ms.next_batch(exact)["group_ids"], bc.next(exact)[0])


def run_main(argv, env_extra=None, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled", HF_HUB_OFFLINE="1", **(env_extra or {}))
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_missing_task_is_one_line_exit_2(tmp_path):
    cache = {"AIOLI_CACHE_DIR": str(tmp_path)}
    proc = run_main(["--task_name", "instruction", "--train_data_dir", NI, "--slice_list", "sst2", "squad",
                     "--model", "tiny", "--max_steps", "2"], cache)
    assert proc.returncode == 2 and proc.stdout == ""
    line, = proc.stderr.strip().splitlines()
    assert line.startswith("error: --slice_list squad") and "task075_squad1.1_answer_generation.json" in line
    assert TASKS in line and "Traceback" not in proc.stderr
    # the default (the paper's 9 tasks) names the missing ones and suggests --slice_list
    with pytest.raises(UsageError, match=r"boolq .*hellaswag .*squad .*xsum .*--slice_list abductivenli mathqa piqa"):
        ni_tasks.resolve_tasks(TASKS, ni_tasks.DEFAULT_SLICE_LIST, default_used=True)
    with pytest.raises(UsageError, match="needs --train_data_dir"):
        ni_tasks.resolve_task_dir(None)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny 'pretrained' GPT-NeoX saved with the demo tokenizer, loaded like any local model."""
    from transformers import PreTrainedTokenizerFast

    path = str(tmp_path_factory.mktemp("pretrained"))
    tiny_model().save_pretrained(path)
    PreTrainedTokenizerFast(tokenizer_file=TOKENIZER_PATH, eos_token="<|endoftext|>").save_pretrained(path)
    return path


def e2e(pretrained, tmp_path, *extra):
    out = str(tmp_path / "out")
    proc = run_main(["--task_name", "instruction", "--train_data_dir", NI, "--slice_list", "sst2", "mathqa", "semeval",
                     "--model", pretrained, "--max_steps", "12", "--batch_size", "4", "--context_length", "256",
                     "--num_threads", "1", "--no_progress", "--max_eval_samples", "4", "--output_dir", out, *extra],
                    {"AIOLI_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    run, = os.listdir(out)
    results = json.load(open(os.path.join(out, run, "results.json")))
    config = json.load(open(os.path.join(out, run, "config.json")))
    assert results["status"] == "complete" and results["step"] == 12
    assert results["groups"] == config["groups"] == ["sst2", "mathqa", "semeval"]
    for split in ("val", "test"):
        assert all(0 < x < 20 for x in results[f"{split}_loss"].values())
    assert config["data"]["loss_on"] == "answer only" and config["checkpoint"] is None
    return results, os.path.join(out, run)


def test_aioli_run_over_three_tasks(pretrained, tmp_path):
    results, run = e2e(pretrained, tmp_path, "--aioli", "--update_steps", "6", "--lp_steps", "1", "--lp_rounds", "1",
                       "--one_hot_factor", "0.6", "--eta", "0.5", "--aioli_normalize_A", "--warmup_steps", "0")
    assert results["method"] == "aioli"
    w = results["final_weights"]
    assert set(w) == {"sst2", "mathqa", "semeval"} and math.isclose(sum(w.values()), 1.0, rel_tol=1e-6)
    assert len(results["weights_trajectory"]) > 2  # probes and two rounds' mixtures


def test_static_grid_point_and_skillit_runs(pretrained, tmp_path):
    results, _ = e2e(pretrained, tmp_path / "static", "--sample_rule", "mixture", "--proportions", "2", "1", "1")
    assert results["method"] == "static"
    assert results["final_weights"] == pytest.approx({"sst2": 0.5, "mathqa": 0.25, "semeval": 0.25})
    results, _ = e2e(pretrained, tmp_path / "skillit", "--skillit", "--update_steps", "6", "--eta", "0.2",
                     "--num_ckpts", "4")
    assert results["method"] == "skillit" and len(results["weights_trajectory"]) >= 2


def test_build_data_namespace_defaults(tok, tmp_path):
    """build_instruction_data works from the data flags alone (instruction options at their defaults but for
    the cache)."""
    from data.instructions import InstructionOptions, build_instruction_data

    flags = SimpleNamespace(train_data_dir=TASKS, slice_list=["piqa", "sst2"], tokenizer=TOKENIZER_PATH,
                            context_length=256, sampling="exact")
    data = build_instruction_data(flags, batch_size=2, seed=0,
                                  options=InstructionOptions(instruction_cache_dir=str(tmp_path)))
    assert data.groups == ["piqa", "sst2"] and data.vocab_size == 4096
    assert data.info["examples"]["sst2"] == {"train": 12, "val": 6, "test": 6}
    val = data.eval_source("val", "sst2", 2)
    assert val["input_ids"].shape[0] == 2 and set(val) == {"input_ids", "labels", "attention_mask"}
    assert set(data.make_sampler([1, 1]).next_batch()) == {"input_ids", "labels", "attention_mask", "group_ids"}

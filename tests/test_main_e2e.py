"""End-to-end runs of main.py with the paper's flag names on real-text tiny shards and a tiny model."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def paper_flags(data, out, *extra):
    return ["--task_name", "slimpj", "--train_data_dir", data, "--val_data_dir", data,
            "--slice_list", "arxiv", "stackexchange", "--model", "tiny", "--checkpoint", "0",
            "--batch_size", "4", "--context_length", "64", "--lr", "0.001",
            "--lr_scheduler", "linear_warmup_cosine", "--warmup_steps", "3", "--eval_batch_size", "8",
            "--max_eval_samples", "6", "--output_dir", out, "--num_threads", "1", "--no_progress", *extra]


def run_main(argv, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, **kw)


def only_run_dir(out):
    (name,) = os.listdir(out)
    return os.path.join(out, name)


def read_jsonl(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def test_static_run_writes_every_output(tiny_shards, tmp_path):
    out = str(tmp_path / "out")
    proc = run_main(paper_flags(tiny_shards, out, "--sample_rule", "mixture", "--proportions", "4", "6",
                                "--max_steps", "12", "--num_ckpts", "3", "--log_every", "2", "--save_model"))
    assert proc.returncode == 0, proc.stderr
    run = only_run_dir(out)
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["groups"] == ["arxiv", "stackexchange"] and config["method"] == "static"
    assert config["initial_weights"] == pytest.approx({"arxiv": 0.4, "stackexchange": 0.6})
    assert config["total_steps"] == 12 and config["model_name"] == "tiny" and config["data"]["vocab_size"] == 4096
    results = json.load(open(os.path.join(run, "results.json")))
    assert results["status"] == "complete" and results["step"] == 12 and results["tokens"] == 12 * 4 * 64
    for split in ("val", "test"):
        assert set(results[f"{split}_loss"]) == {"arxiv", "stackexchange"}
        for g, loss in results[f"{split}_loss"].items():
            assert 0 < loss < 12 and results[f"{split}_perplexity"][g] == pytest.approx(math.exp(loss))
    mean_ppl = sum(math.exp(x) for x in results["test_loss"].values()) / 2
    assert results["average_test_perplexity"] == pytest.approx(mean_ppl)
    assert results["final_weights"] == pytest.approx({"arxiv": 0.4, "stackexchange": 0.6})
    assert [h["step"] for h in results["val_history"]] == [0, 4, 8, 12]
    first, last = results["val_history"][0]["val_loss"], results["val_history"][-1]["val_loss"]
    assert all(last[g] < first[g] for g in first), "training did not lower the val loss"
    lines = read_jsonl(os.path.join(run, "metrics.jsonl"))
    train_lines = [x for x in lines if "train_loss" in x]
    assert [x["step"] for x in train_lines] == [1, 2, 4, 5, 6, 8, 9, 10, 12]
    for x in train_lines:
        assert {"tokens", "lr", "weights", "tokens_per_s"} <= set(x) and math.isfinite(x["train_loss"])
    assert lines[-1]["final"] == "complete" and "test_loss" in lines[-1]
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == ["step_00000004", "step_00000008"]
    assert os.path.isfile(os.path.join(run, "model", "model.safetensors"))
    assert "average" in proc.stdout and "stackexchange" in proc.stdout  # the per-group table
    assert sorted(os.listdir(os.path.join(run, "plots"))) == ["mixture.png", "val_loss.png"]
    _check_hf_model_folder(os.path.join(run, "model"), results)
    # --use_saved_model: the same configuration finds the saved model and only evaluates it
    again = run_main(paper_flags(tiny_shards, out, "--sample_rule", "mixture", "--proportions", "4", "6",
                                 "--max_steps", "12", "--num_ckpts", "3", "--log_every", "2", "--use_saved_model"))
    assert again.returncode == 0, again.stderr
    assert os.listdir(out) == [os.path.basename(run)], "evaluating a saved model must not start a new run"
    evaluated = json.load(open(os.path.join(run, "results.json")))
    assert evaluated["status"] == "evaluated"
    assert evaluated["test_loss"] == pytest.approx(results["test_loss"], rel=1e-5)


def _check_hf_model_folder(folder, results):
    """--save_model: a folder that transformers loads as it is (model, the data's tokenizer, a pipeline)
    and whose model card names the groups, the method and the mixture."""
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    from data.demo import TOKENIZER_PATH

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = tokenizer("The proof of the theorem", return_tensors="pt")["input_ids"]
    assert ids[0].tolist() == Tokenizer.from_file(TOKENIZER_PATH).encode("The proof of the theorem").ids
    assert model(input_ids=ids).logits.shape[:2] == ids.shape
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id == tokenizer.convert_tokens_to_ids(
        "<|endoftext|>")
    text = pipeline("text-generation", model=folder)("The proof", max_new_tokens=4, do_sample=False)
    assert text[0]["generated_text"].startswith("The proof")
    card = open(os.path.join(folder, "README.md")).read()
    assert card.startswith("---\nlibrary_name: transformers")
    for group, weight in results["final_weights"].items():
        assert f"| {group} | {weight:.3f} |" in card
    assert "`static` data-mixing method" in card


def test_kill_and_resume_gives_identical_results(tiny_shards, tmp_path):
    flags = ["--max_steps", "40", "--num_ckpts", "2", "--checkpoint_every", "5", "--run_name", "r",
             "--sample_rule", "stratified"]
    straight = run_main(paper_flags(tiny_shards, str(tmp_path / "a"), *flags))
    assert straight.returncode == 0, straight.stderr
    out_b = str(tmp_path / "b")
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "main.py"), *paper_flags(tiny_shards, out_b, *flags)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = os.path.join(out_b, "r", "checkpoints")
    deadline = time.time() + 240
    while time.time() < deadline and not (os.path.isdir(ckpts) and "step_00000015" in os.listdir(ckpts)):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(out_b, "r", "results.json")), "the run finished before the kill"
    resumed = run_main(paper_flags(tiny_shards, out_b, *flags, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    a = json.load(open(tmp_path / "a" / "r" / "results.json"))
    b = json.load(open(os.path.join(out_b, "r", "results.json")))
    assert a == b
    steps = [x["step"] for x in read_jsonl(os.path.join(out_b, "r", "metrics.jsonl")) if "train_loss" in x]
    assert steps == sorted(set(steps)), "metrics.jsonl repeats steps after the resume"


def test_parent_break_and_child_resume(tiny_shards, tmp_path):
    out = str(tmp_path / "out")
    parent = run_main(paper_flags(tiny_shards, out, "--proportions", "5", "5", "--sample_rule", "mixture",
                                  "--max_steps", "12", "--break_steps", "6", "--run_name", "parent"))
    assert parent.returncode == 0, parent.stderr
    presults = json.load(open(os.path.join(out, "parent", "results.json")))
    assert presults["status"] == "break" and presults["step"] == 6 and "test_loss" not in presults
    child = run_main(paper_flags(tiny_shards, out, "--proportions", "1", "0", "--sample_rule", "mixture",
                                 "--max_steps", "12", "--resume_model_path", os.path.join(out, "parent"),
                                 "--remaining_steps", "3", "--run_name", "child"))
    assert child.returncode == 0, child.stderr
    config = json.load(open(os.path.join(out, "child", "config.json")))
    assert config["parent"]["step"] == 6 and config["total_steps"] == 9
    cresults = json.load(open(os.path.join(out, "child", "results.json")))
    assert cresults["step"] == 9 and cresults["status"] == "complete"
    assert cresults["weights_trajectory"] == [{"step": 6, "weights": {"arxiv": 1.0, "stackexchange": 0.0}}]


def _main_in_process(argv, capsys):
    import main

    with pytest.raises(SystemExit) as exc:
        main.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return exc.value.code, err


@pytest.mark.parametrize("extra, needle", [
    (["--slice_list", "arxiv", "nosuchgroup"], "nosuchgroup"),
    (["--proportions", "1", "2", "3"], "--proportions"),
    (["--proportions", "1", "-2"], "non-negative"),
    (["--proportions", "0", "0"], "all zero"),
    (["--aioli", "--doge"], "mutually exclusive"),
    (["--max_steps", "0"], "--max_steps"),
    (["--resume"], "--resume"),
    (["--batch_size", "3", "--gradient_accumulation_steps", "2"], "--gradient_accumulation_steps"),
    (["--no_such_flag"], "unrecognized arguments"),
    (["--max_steps", "ten"], "--max_steps"),
    (["--lr", "0"], "--lr"),
    (["--eval_batch_size", "0"], "--eval_batch_size"),
    (["--num_threads", "0"], "--num_threads"),
    (["--warmup_steps", "-1"], "--warmup_steps"),
])
def test_bad_input_is_one_line_exit_2(tiny_shards, tmp_path, capsys, extra, needle):
    argv = paper_flags(tiny_shards, str(tmp_path / "out"), "--max_steps", "4", *extra)
    if "--proportions" in extra:
        argv += ["--sample_rule", "mixture"]
    code, err = _main_in_process(argv, capsys)
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert not os.path.exists(tmp_path / "out") or not os.listdir(tmp_path / "out"), "half-written outputs"


def test_missing_data_dir_and_small_model_vocab(tiny_shards, tmp_path, capsys):
    code, err = _main_in_process(paper_flags(str(tmp_path / "nope"), str(tmp_path / "o"), "--max_steps", "2"), capsys)
    assert code == 2 and len(err) == 1 and "--train_data_dir" in err[0]
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    small = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=256, hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64))
    small.save_pretrained(tmp_path / "small")
    capsys.readouterr()
    argv = paper_flags(tiny_shards, str(tmp_path / "o"), "--max_steps", "2")
    argv[argv.index("tiny")] = str(tmp_path / "small")
    del argv[argv.index("--checkpoint"):argv.index("--checkpoint") + 2]
    code, err = _main_in_process(argv, capsys)
    assert code == 2 and len(err) == 1 and "vocabulary" in err[0], err


def test_diverging_loss_stops_with_one_line_and_keeps_checkpoints(tiny_shards, tmp_path, capsys):
    argv = paper_flags(tiny_shards, str(tmp_path / "o"), "--max_steps", "30", "--lr", "1e6", "--lr_scheduler",
                       "constant", "--log_every", "1", "--checkpoint_every", "1", "--run_name", "nan")
    code, err = _main_in_process(argv, capsys)
    assert code == 3 and len(err) == 1 and "loss became nan" in err[0], err
    assert not os.path.exists(tmp_path / "o" / "nan" / "results.json")
    for name in os.listdir(tmp_path / "o" / "nan" / "checkpoints"):  # only steps before the divergence
        assert int(name.split("_")[1]) < int(err[0].split("at step ")[1].split(";")[0])


def test_diverging_loss_before_break_saves_no_parent_state(tiny_shards, tmp_path, capsys):
    argv = paper_flags(tiny_shards, str(tmp_path / "o"), "--max_steps", "40", "--break_steps", "30", "--lr", "1e6",
                       "--lr_scheduler", "constant", "--log_every", "100", "--run_name", "nan")
    code, err = _main_in_process(argv, capsys)
    assert code == 3 and len(err) == 1 and "loss became nan" in err[0], err
    assert not os.path.exists(tmp_path / "o" / "nan" / "checkpoints"), "a diverged parent state was saved"

"""torchrun on the CPU (gloo): N ranks train what one process trains, and a run resumes on another
number of ranks. Every run checks at each checkpoint and at the end that all ranks hold the same
sampler position and method state (trainer.distributed.Dist.check_same), so a finished 2-rank Aioli run
is itself the proof that both ranks took the same decisions."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.test_main_e2e import ROOT, paper_flags, read_jsonl

pytestmark = pytest.mark.slow
STEPS = ["--max_steps", "12", "--num_ckpts", "2", "--checkpoint_every", "4", "--batch_size", "8",
         "--max_test_samples", "16", "--run_name", "r"]
AIOLI = ["--aioli", "--update_steps", "5", "--lp_rounds", "2", "--lp_steps", "1", "--one_hot_factor", "0.75",
         "--eta", "1", "--aioli_normalize_A", "--lp_eval_samples", "4"]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled", HF_HUB_OFFLINE="1")


def torchrun_argv(argv, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
            os.path.join(ROOT, "main.py"), *argv]


def run_torchrun(argv, nproc=2):
    return subprocess.run(torchrun_argv(argv, nproc), cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=300)


def run_here(argv):
    """main.main in this process (no interpreter start-up): a one-process reference run."""
    import main

    main.main(argv)


def results(out):
    return json.load(open(os.path.join(out, "r", "results.json")))


def assert_same_run(a, b, rel=1e-4):
    for split in ("val_loss", "test_loss"):
        for group, value in a[split].items():
            assert b[split][group] == pytest.approx(value, rel=rel), (split, group)
    assert b["average_test_perplexity"] == pytest.approx(a["average_test_perplexity"], rel=rel)
    assert b["tokens"] == a["tokens"]


@pytest.fixture(scope="module")
def one_process(tiny_shards, tmp_path_factory):
    """The reference runs in one process: {"static": out, "aioli": out}."""
    outs = {}
    static = ["--sample_rule", "stratified", "--save_model"]  # also DoReMi's reference model
    for name, extra in (("static", static), ("aioli", AIOLI)):
        out = str(tmp_path_factory.mktemp(f"one_{name}"))
        run_here(paper_flags(tiny_shards, out, *STEPS, *extra))
        outs[name] = out
    return outs


def test_two_ranks_train_what_one_process_trains(one_process, tiny_shards, tmp_path):
    """Aioli (the method whose decisions depend most on evaluations) on 2 ranks against one process; the
    stratified comparison is the first half of the kill test below."""
    name, extra = "aioli", AIOLI
    out = str(tmp_path)
    proc = run_torchrun(paper_flags(tiny_shards, out, *STEPS, *extra))
    assert proc.returncode == 0, proc.stderr[-8000:]  # torchrun's summary takes the last ~3000
    assert proc.stdout.count("average") == 1, "only rank 0 prints the results"
    assert_same_run(results(one_process[name]), results(out))
    config = json.load(open(os.path.join(out, "r", "config.json")))
    assert config["world_size"] == 2
    steps = [x["step"] for x in read_jsonl(os.path.join(out, "r", "metrics.jsonl")) if "train_loss" in x]
    assert steps == sorted(set(steps)), "more than one rank wrote metrics.jsonl"
    one = json.load(open(os.path.join(one_process[name], "r", "aioli.json")))["rounds"]
    two = json.load(open(os.path.join(out, "r", "aioli.json")))["rounds"]
    assert len(one) == len(two) > 0
    for a, b in zip(one, two):
        assert b["weights"] == pytest.approx(a["weights"], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("method", ["doremi", "doge", "ado"])
def test_per_row_methods_on_two_ranks_decide_what_one_process_decides(one_process, tiny_shards, tmp_path, method):
    """DoReMi's weights come from the excess losses of the rows each rank trains, DoGE's from per-group
    gradients on them, ADO's from the per-group training losses (gathered by methods/group_losses.py, which
    ODM shares): summed over the ranks, the 2-rank run decides exactly as one process does."""
    extra = {"doremi": ["--doremi", "--doremi_reference_model_path", os.path.join(one_process["static"], "r")],
             "doge": ["--doge", "--doge_val_batch_size", "4"],
             # fits at steps 16 (2 points: too few) and 32 (4 points), then 8 steps on the fitted policy
             "ado": ["--ado", "--max_steps", "40", "--ado_start_step", "16", "--ado_update_steps", "16",
                     "--ado_ignore_steps", "0", "--checkpoint_every", "8"]}[method]
    run_here(paper_flags(tiny_shards, str(tmp_path / "one"), *STEPS, *extra))
    two = run_torchrun(paper_flags(tiny_shards, str(tmp_path / "two"), *STEPS, *extra))
    assert two.returncode == 0, two.stderr[-8000:]
    assert_same_run(results(str(tmp_path / "one")), results(str(tmp_path / "two")))
    a, b = (json.load(open(tmp_path / name / "r" / f"{method}.json")) for name in ("one", "two"))
    assert b["average_weights"] == pytest.approx(a["average_weights"], rel=1e-4)
    if method == "ado":
        assert [f["accepted"] for f in a["fits"]] == [f["accepted"] for f in b["fits"]] == [False, True]
        for x, y in zip(a["fits"][1]["params"], b["fits"][1]["params"]):
            assert y["alpha"] == pytest.approx(x["alpha"], rel=1e-3, abs=1e-4)


def _children(pid):
    """Pids whose parent is `pid` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_a_killed_rank_ends_the_job_and_one_process_resumes_it(one_process, tiny_shards, tmp_path):
    out = str(tmp_path)
    argv = paper_flags(tiny_shards, out, *STEPS, "--sample_rule", "stratified")
    job = subprocess.Popen(torchrun_argv(argv), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    _kill_after_checkpoint(job, out, victim=lambda: _children(job.pid)[-1])  # one rank dies: the job ends
    run_here(argv + ["--resume"])
    assert_same_run(results(one_process["static"]), results(out))
    (change,) = json.load(open(os.path.join(out, "r", "config.json")))["resumes"]
    assert change["changed"]["world_size"] == {"from": 2, "to": 1}
    assert not [n for n in os.listdir(os.path.join(out, "r", "checkpoints")) if n.startswith(".tmp")]


def test_a_one_process_run_continues_on_two_sharded_ranks(one_process, tiny_shards, tmp_path):
    """Aioli in one process, killed after its first checkpoint, then continued by 2 ranks with --fsdp: the
    single-file checkpoint is split into each rank's shards of the model and optimizer."""
    out = str(tmp_path)
    argv = paper_flags(tiny_shards, out, *STEPS, *AIOLI)
    first = subprocess.Popen([sys.executable, os.path.join(ROOT, "main.py"), *argv], cwd=ROOT, env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_after_checkpoint(first, out)
    resumed = run_torchrun(argv + ["--resume", "--fsdp"])
    assert resumed.returncode == 0, resumed.stderr[-8000:]
    assert_same_run(results(one_process["aioli"]), results(out))
    (change,) = json.load(open(os.path.join(out, "r", "config.json")))["resumes"]
    assert change["changed"]["fsdp"] == {"from": False, "to": True}


def test_sharded_ranks_train_what_one_process_trains_and_their_checkpoint_resumes_in_one(
        one_process, tiny_shards, tmp_path):
    """--fsdp on 2 ranks: the same run as one process; checkpoints in torch.distributed.checkpoint's
    sharded layout, which one process (no --fsdp) resumes; --save_model writes a plain HF model."""
    from safetensors.torch import load_file

    out = str(tmp_path)
    argv = paper_flags(tiny_shards, out, *STEPS, *AIOLI)
    proc = run_torchrun(argv + ["--fsdp", "--save_model"])
    assert proc.returncode == 0, proc.stderr[-8000:]
    assert_same_run(results(one_process["aioli"]), results(out))
    run = os.path.join(out, "r")
    ckpt = os.path.join(run, "checkpoints", "step_00000004")
    assert os.path.isfile(os.path.join(ckpt, "sharded", ".metadata"))
    assert len([n for n in os.listdir(os.path.join(ckpt, "sharded")) if n.endswith(".distcp")]) == 2
    assert not os.path.exists(os.path.join(ckpt, "model.safetensors"))
    saved = load_file(os.path.join(run, "model", "model.safetensors"))
    plain = load_file(os.path.join(one_process["static"], "r", "model", "model.safetensors"))
    assert sorted(saved) == sorted(plain)  # the same file layout as a one-process --save_model
    assert all(saved[k].shape == plain[k].shape for k in plain)
    # back to step 4 (the sharded checkpoint), then one process without --fsdp finishes the run
    shutil.rmtree(os.path.join(run, "checkpoints", "step_00000008"))
    shutil.rmtree(os.path.join(run, "model"))
    os.remove(os.path.join(run, "results.json"))
    run_here(argv + ["--resume"])
    assert_same_run(results(one_process["aioli"]), results(out))


def _kill_after_checkpoint(proc, out, victim=None):
    """SIGKILL `victim` (default: proc) once the run's step-4 checkpoint exists; then wait for proc."""
    ckpt = os.path.join(out, "r", "checkpoints", "step_00000004")
    deadline = time.time() + 240
    while time.time() < deadline and not os.path.isdir(ckpt) and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before the kill"
    os.kill(victim() if victim else proc.pid, signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert not os.path.exists(os.path.join(out, "r", "results.json"))


@pytest.mark.parametrize("world, extra, message", [
    (2, ["--batch_size", "3"], "--batch_size 3 (the global batch) must split evenly over 2 ranks"),
    (1, ["--fsdp"], "--fsdp shards the model over torchrun's processes"),
    (2, ["--fsdp", "--doge"], "--fsdp: doge writes per-group gradients"),
])
def test_a_job_that_cannot_run_on_its_ranks_is_one_line(tiny_shards, tmp_path, monkeypatch, capsys, world, extra,
                                                        message):
    """Refused before the process group is joined (checked here in process, as rank 0 of `world`)."""
    import main

    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit) as exc:
        main.main(paper_flags(tiny_shards, str(tmp_path / "o"), "--max_steps", "2", *extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1, err
    assert message in err[0]
    assert not os.path.exists(tmp_path / "o")

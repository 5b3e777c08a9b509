"""The promises of docs/reliability.md, one test each: parallel runs that do not collide, resume that never
silently changes a run, restarts after an early death, no leftovers, damaged input never half-used, and
one clear line (exit code 2) for every bad input."""
import json
import os
import subprocess
import sys
import time

import pytest
import zstandard

from tests.test_main_e2e import ROOT, paper_flags, read_jsonl, run_main

FLAGS = ["--max_steps", "12", "--num_ckpts", "2", "--checkpoint_every", "4", "--sample_rule", "stratified",
         "--max_test_samples", "6"]


def _main(argv, capsys):
    """main.main in this process: (exit code, stderr lines)."""
    import main

    try:
        main.main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err.strip().splitlines()


def _snapshot(run):
    """Every file of a run folder with its bytes (the lock files excepted)."""
    found = {}
    for root, _, names in os.walk(run):
        for name in names:
            if not name.startswith(".lock"):
                path = os.path.join(root, name)
                found[os.path.relpath(path, run)] = open(path, "rb").read()
    return found


def _popen(argv):
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled", HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "main.py"), *argv], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline and not os.path.exists(path):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    assert os.path.exists(path), f"{path} never appeared"


@pytest.fixture(scope="module")
def finished_run(tiny_shards, tmp_path_factory):
    """A finished 12-step run `r` (checkpoints at 4 and 8), and its flags."""
    out = str(tmp_path_factory.mktemp("finished"))
    argv = paper_flags(tiny_shards, out, *FLAGS, "--run_name", "r")
    proc = run_main(argv)
    assert proc.returncode == 0, proc.stderr
    return os.path.join(out, "r"), argv


# -- concurrency ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_second_process_on_a_run_dir_is_refused_naming_the_holder(tiny_shards, tmp_path, capsys):
    argv = paper_flags(tiny_shards, str(tmp_path), "--run_name", "r")
    first = _popen(argv + ["--max_steps", "5000"])
    try:
        _wait_for(tmp_path / "r" / "config.json", first)
        refusals = [_main(argv + ["--max_steps", "5000"] + extra, capsys) for extra in ([], ["--resume"])]
    finally:
        first.kill()
        first.communicate()
    for code, err in refusals:
        assert code == 2 and len(err) == 1, err
        assert "in use by another process" in err[0] and f"pid {first.pid}" in err[0], err
    # the dead holder's lock is taken over (the kernel released it with the process)
    code, err = _main(argv + ["--max_steps", "6", "--resume"], capsys)
    assert code == 0, err
    assert json.load(open(tmp_path / "r" / "results.json"))["step"] == 6


@pytest.mark.slow
def test_identical_runs_started_together_get_their_own_folders(tiny_shards, tmp_path):
    argv = paper_flags(tiny_shards, str(tmp_path), "--max_steps", "6", "--sample_rule", "stratified")
    procs = [_popen(argv) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    runs = sorted(os.listdir(tmp_path))
    assert len(runs) == 2 and runs[1] == runs[0] + "-2"
    results = [json.load(open(tmp_path / r / "results.json")) for r in runs]
    for r in results:
        r.pop("run_name")
    assert results[0]["test_loss"] == results[1]["test_loss"]  # same config, same seed: same run
    for r in runs:
        steps = [x["step"] for x in read_jsonl(tmp_path / r / "metrics.jsonl") if "train_loss" in x]
        assert steps == sorted(set(steps)), "two processes wrote into one metrics.jsonl"


@pytest.mark.slow
def test_two_runs_preparing_one_raw_corpus_at_once(tmp_path):
    """Both main.py processes find the raw corpus unprepared; the preparation lock makes one prepare and the
    other wait and reuse it: both finish, with one cache folder."""
    from tests.conftest import _demo_subset

    raw = _demo_subset(str(tmp_path), ["book", "github"], docs_per_group=80, max_chars=2000)
    cache = tmp_path / "cache"
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled", AIOLI_CACHE_DIR=str(cache))
    argv = ["--train_data_dir", raw, "--model", "tiny", "--checkpoint", "0", "--context_length", "64",
            "--batch_size", "4", "--max_steps", "3", "--max_eval_samples", "4", "--no_progress", "--num_threads", "1"]
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "main.py"), *argv, "--output_dir",
                               str(tmp_path / f"out{i}")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert len(os.listdir(cache / "shards")) == 2  # the prepared folder and its lock file
    assert not list(cache.rglob("*.tmp"))


# -- resume -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("change", [
    ["--lr", "0.002"], ["--model", "mini"], ["--aioli", "--update_steps", "6", "--eta", "0.5", "--lp_steps", "1"],
    ["--proportions", "3", "1", "--sample_rule", "mixture"], ["--selection_seed", "1"],
    ["--context_length", "32"], ["--batch_size", "2"], ["--slice_list", "arxiv", "book"],
    ["--lr_scheduler", "cosine"], ["--max_eval_samples", "3"],
])
def test_resume_refuses_a_changed_identity_flag(finished_run, capsys, change):
    run, argv = finished_run
    before = _snapshot(run)
    code, err = _main(argv + ["--resume"] + change, capsys)
    assert code == 2 and len(err) == 1, err
    flag = "--slice_list" if "--slice_list" in change else "--method" if "--aioli" in change else change[0]
    assert "cannot change on resume" in err[0] and flag in err[0], err
    assert _snapshot(run) == before, "a refused resume changed the run"


def test_resume_refuses_a_changed_data_dir(finished_run, tiny_shards, tmp_path, capsys):
    import shutil

    run, argv = finished_run
    other = str(tmp_path / "copy")
    shutil.copytree(tiny_shards, other)
    changed = [other if a == tiny_shards else a for a in argv]
    code, err = _main(changed + ["--resume"], capsys)
    assert code == 2 and "--train_data_dir" in err[0] and "cannot change on resume" in err[0], err


def test_resume_may_extend_a_run_and_records_the_change(finished_run, tmp_path, capsys):
    import shutil

    run, argv = finished_run
    copy = str(tmp_path / "r")
    shutil.copytree(run, copy)
    argv = [str(tmp_path) if a == os.path.dirname(run) else a for a in argv]
    code, err = _main(argv + ["--resume", "--max_steps", "16", "--log_every", "2"], capsys)
    assert code == 0, err
    config = json.load(open(os.path.join(copy, "config.json")))
    assert config["max_steps"] == 16 and config["total_steps"] == 16 and config["log_every"] == 2
    (resumed,) = config["resumes"]
    assert resumed["step"] == 8  # the latest checkpoint (the final step is not checkpointed)
    assert resumed["changed"]["max_steps"] == {"from": 12, "to": 16}
    assert resumed["changed"]["log_every"] == {"from": 10, "to": 2}
    assert set(resumed["changed"]) == {"max_steps", "log_every", "output_dir"}  # the folder was copied
    results = json.load(open(os.path.join(copy, "results.json")))
    assert results["step"] == 16 and results["status"] == "complete"


@pytest.mark.slow
def test_early_death_then_resume_starts_again(tiny_shards, tmp_path, capsys):
    """Killed before its first checkpoint: --resume restarts it from step 0 (saying so) and gives the
    uninterrupted run's results; --overwrite does the same for a finished run."""
    flags = ["--max_steps", "12", "--checkpoint_every", "8", "--num_ckpts", "1", "--run_name", "r",
             "--sample_rule", "stratified"]
    code, err = _main(paper_flags(tiny_shards, str(tmp_path / "a"), *flags), capsys)
    assert code == 0, err
    out = str(tmp_path / "b")
    proc = _popen(paper_flags(tiny_shards, out, *flags))
    _wait_for(os.path.join(out, "r", "config.json"), proc)
    proc.kill()
    proc.communicate()
    assert not os.path.isdir(os.path.join(out, "r", "checkpoints", "step_00000008"))
    code, err = _main(paper_flags(tiny_shards, out, *flags), capsys)
    assert code == 2 and len(err) == 1 and "--resume" in err[0] and "--overwrite" in err[0], err
    resumed = run_main(paper_flags(tiny_shards, out, *flags, "--resume"))  # a subprocess: its warning on stderr
    assert resumed.returncode == 0, resumed.stderr
    assert "no checkpoint yet" in resumed.stderr and "starting it again from step 0" in resumed.stderr
    expected = json.load(open(tmp_path / "a" / "r" / "results.json"))
    assert json.load(open(os.path.join(out, "r", "results.json"))) == expected
    code, err = _main(paper_flags(tiny_shards, out, *flags, "--overwrite"), capsys)
    assert code == 0, err
    assert json.load(open(os.path.join(out, "r", "results.json"))) == expected
    steps = [x["step"] for x in read_jsonl(os.path.join(out, "r", "metrics.jsonl")) if "train_loss" in x]
    assert steps == sorted(set(steps))


def test_leftovers_of_a_killed_process_are_removed(finished_run, tmp_path, capsys):
    import shutil

    run, argv = finished_run
    copy = tmp_path / "r"
    shutil.copytree(run, copy)
    argv = [str(tmp_path) if a == os.path.dirname(run) else a for a in argv]
    stale = copy / "checkpoints" / ".tmp_step_00000012_99999"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"\0" * 1000)
    (copy / ".model.tmp").mkdir()
    (copy / "results.json.tmp").write_text("{")
    code, err = _main(argv + ["--resume", "--save_model"], capsys)
    assert code == 0, err
    assert not stale.exists() and not (copy / ".model.tmp").exists() and not (copy / "results.json.tmp").exists()
    assert (copy / "model" / "model.safetensors").is_file()
    assert not os.path.exists(copy / ".lock.owner"), "the lock's owner record outlived the process's work"


def test_a_model_folder_replaced_at_the_moment_of_a_kill_is_put_back(tmp_path):
    from trainer.run_dir import RunDir

    run = RunDir(str(tmp_path / "r"))
    assert run.claim()
    (tmp_path / "r" / ".model.old").mkdir()
    (tmp_path / "r" / ".model.old" / "config.json").write_text("{}")
    run.clean_leftovers()
    assert (tmp_path / "r" / "model" / "config.json").is_file()
    run.release()


# -- damaged input ----------------------------------------------------------------------------------
def _truncated_corpus(tmp_path):
    """Two real-text groups as .jsonl.zst files, book's cut in the middle of a frame."""
    from tests.conftest import _demo_subset

    folder = tmp_path / "raw"
    folder.mkdir()
    for group in ("book", "github"):
        os.makedirs(tmp_path / group)
        text = open(_demo_subset(str(tmp_path / group), [group], docs_per_group=200, max_chars=4000), "rb").read()
        packed = zstandard.ZstdCompressor().compress(text)
        (folder / f"{group}.jsonl.zst").write_bytes(packed[:len(packed) // 2] if group == "book" else packed)
    return folder


def test_a_truncated_zst_is_an_error_naming_the_file(tmp_path):
    from data.demo import TOKENIZER_PATH

    raw = _truncated_corpus(tmp_path)
    argv = [sys.executable, "-m", "data.prepare", "--input", str(raw), "--output", str(tmp_path / "out"),
            "--tokenizer", TOKENIZER_PATH, "--val_fraction", "0.2", "--test_fraction", "0.2"]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "book.jsonl.zst is damaged" in lines[0] and "truncated" in lines[0] and "--skip_damaged_files" in lines[0]
    assert not (tmp_path / "out").exists(), "a refused preparation left files"
    kept = subprocess.run(argv + ["--skip_damaged_files", "--no_progress"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert kept.returncode == 0, kept.stderr
    meta = json.load(open(tmp_path / "out" / "meta.json"))
    (damaged,) = meta["damaged_files"]
    assert damaged["file"].endswith("book.jsonl.zst") and damaged["lines_kept"] > 0
    assert "warning" in kept.stderr and "book.jsonl.zst" in kept.stderr


def test_malformed_lines_are_counted_per_file(tmp_path):
    from data.demo import TOKENIZER_PATH
    from data.prepare import prepare_corpus

    raw = _truncated_corpus(tmp_path)
    (raw / "book.jsonl.zst").unlink()
    with open(raw / "extra.jsonl", "w") as fh:
        fh.write('{"text": "a book line", "meta": {"redpajama_set_name": "RedPajamaBook"}}\n{not json\n\n{"x": 1}\n')
    meta = prepare_corpus(raw, tmp_path / "out", TOKENIZER_PATH, val_fraction=0.2, test_fraction=0.2,
                          progress=False, groups=["github"])
    assert meta["skipped_lines"] == 2
    assert meta["skipped_lines_by_file"] == {str(raw / "extra.jsonl"): 2}


# -- one clear line --------------------------------------------------------------------------------
def test_bad_inputs_are_one_line_and_write_nothing(tiny_shards, tmp_path, capsys):
    from data.demo import TOKENIZER_PATH

    (tmp_path / "string.json").write_text('{"weights": ["a", "b"]}')
    (tmp_path / "afile").write_text("x")
    out = str(tmp_path / "out")
    cases = [
        (["--proportions_file", str(tmp_path / "string.json")], "weights must be numbers"),
        (["--output_dir", str(tmp_path / "afile")], "--output_dir"),
        (["--run_name", "../escape"], "--run_name"),
        (["--run_name", "a/b"], "--run_name"),
        (["--resume", "--overwrite"], "--overwrite"),
        (["--model", "EleutherAI/pythia-14m", "--context_length", "4096", "--tokenizer", TOKENIZER_PATH],
         "--context_length 4096"),
    ]
    for extra, needle in cases:
        argv = paper_flags(tiny_shards, out, "--max_steps", "2", *extra)
        if "--output_dir" in extra:
            argv = [a for a in argv if a != out]
            argv.remove("--output_dir")
            argv += ["--output_dir", str(tmp_path / "afile")]
        code, err = _main(argv, capsys)
        assert code == 2 and len(err) == 1 and needle in err[0], (extra, err)
        assert not os.path.exists(out), (extra, os.listdir(out))
    assert not os.path.exists(tmp_path / "escape")


def test_a_missing_model_folder_is_blamed_on_model_not_tokenizer(tmp_path, capsys):
    from tests.conftest import _demo_subset

    raw = _demo_subset(str(tmp_path), ["book", "github"], docs_per_group=5, max_chars=500)
    code, err = _main(["--train_data_dir", raw, "--model", "./no/such/model", "--max_steps", "2",
                       "--output_dir", str(tmp_path / "o")], capsys)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --model ./no/such/model: no such folder"), err


def _fit(tmp_path, command, rows, name="t.csv", raw=None):
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text("a,b,loss_a,loss_b\n" + "".join(f"{r}\n" for r in rows))
    out = tmp_path / f"{command}.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "mixing_law_fitting.py"), command, "--csv", str(path),
                           "--mixture_columns", "a", "b", "--loss_columns", "loss_a", "loss_b", "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    return proc, out


@pytest.mark.parametrize("command", ["linreg", "regression"])
def test_fitting_refuses_what_it_cannot_fit(tmp_path, command):
    bad = {
        "one row": (["0.5,0.5,2.0,3.0"], "needs at least 3 distinct mixtures"),
        "identical rows": (["0.5,0.5,2.0,3.0"] * 6, "got 1 (in 6 rows)"),
        "two mixtures": (["0.5,0.5,2.0,3.0", "0.3,0.7,2.1,2.9"], "got 2"),
    }
    for rows, needle in bad.values():
        proc, out = _fit(tmp_path, command, rows)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr
        assert not out.exists()
    proc, out = _fit(tmp_path, command, [], raw=b"a,b,loss_a,loss_b\n0.5,0.5,2.0,\xff\xfe\n")
    assert proc.returncode == 2 and "not UTF-8" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    # exactly as many mixtures as parameters: fitted, and flagged as degenerate
    proc, out = _fit(tmp_path, command, ["0.5,0.5,2.0,3.0", "0.3,0.7,2.1,2.9", "0.2,0.8,2.2,2.7"])
    assert proc.returncode == 0, proc.stderr
    assert "degenerate" in proc.stdout and any("degenerate" in w for w in json.load(open(out))["warnings"])

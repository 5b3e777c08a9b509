"""scripts/run_many.py: a list of independent main.py runs, N at once here or as a submitit job array
(submitit's local executor stands in for Slurm), and the pipelines' RUNNER hook that hands it a stage's
runs (the sweep's points, Skill-it's one-hot runs)."""
import json
import os
import shlex
import subprocess
import sys

import pytest

from tests.test_main_e2e import ROOT, paper_flags

pytestmark = pytest.mark.slow
RUN_MANY = os.path.join(ROOT, "scripts", "run_many.py")


def _commands(tiny_shards, out, names, bad=False):
    lines = [shlex.join([sys.executable, os.path.join(ROOT, "main.py"),
                         *paper_flags(tiny_shards, str(out), "--max_steps", "3", "--run_name", name,
                                      "--sample_rule", "mixture", "--proportions", str(i + 1), "1")])
             for i, name in enumerate(names)]
    if bad:
        lines.append(shlex.join([sys.executable, os.path.join(ROOT, "main.py"), "--max_steps", "0"]))
    return "# a sweep\n" + "\n".join(lines) + "\n"


def _run_many(path, *flags):
    return subprocess.run([sys.executable, RUN_MANY, str(path), *flags], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_local_slots_run_every_command_and_name_the_failed_one(tiny_shards, tmp_path):
    path = tmp_path / "sweep.commands.txt"
    path.write_text(_commands(tiny_shards, tmp_path / "out", ["mix01", "mix02"], bad=True))
    proc = _run_many(path, "--slots", "2")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "command 2 failed (exit 2" in errors[0] and "--max_steps 0" in errors[0]
    for name, weights in (("mix01", [0.5, 0.5]), ("mix02", [2 / 3, 1 / 3])):
        results = json.load(open(tmp_path / "out" / name / "results.json"))
        assert list(results["final_weights"].values()) == pytest.approx(weights)
    assert "--max_steps" in open(tmp_path / "sweep.commands.logs" / "02.log").read()


def test_submitit_executor_runs_the_array(tiny_shards, tmp_path):
    pytest.importorskip("submitit")
    path = tmp_path / "onehot.commands.txt"
    path.write_text(_commands(tiny_shards, tmp_path / "out", ["a", "b"]))
    proc = _run_many(path, "--executor", "submitit-local", "--timeout_min", "10")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("a", "b"):
        assert json.load(open(tmp_path / "out" / name / "results.json"))["status"] == "complete"


def test_pipeline_batches_go_through_the_runner(tiny_shards, tmp_path):
    """The pipelines' train calls between batch_begin and batch_end are written down and run together."""
    flags = paper_flags(tiny_shards, "-", "--max_steps", "3")
    at = flags.index("--output_dir")
    flags = shlex.join(flags[:at] + flags[at + 2:])  # train() names the folder itself
    script = f"""
set -euo pipefail
source {shlex.quote(os.path.join(ROOT, "scripts", "lib", "common.sh"))}
OUT={shlex.quote(str(tmp_path / "out"))}
batch_begin sweep_seed0
train "$OUT/sweep_seed0" mix01 {flags} --sample_rule mixture --proportions 1 3
train "$OUT/sweep_seed0" mix02 {flags} --sample_rule mixture --proportions 3 1
[[ ! -e "$OUT/sweep_seed0/mix01/results.json" ]]  # queued, not run yet
batch_end
"""
    env = dict(os.environ, RUNNER="local:2", PYTHON=sys.executable, OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    commands = (tmp_path / "out" / "sweep_seed0.commands.txt").read_text().splitlines()
    assert len(commands) == 2 and all("--run_name" in c for c in commands)
    for name in ("mix01", "mix02"):
        assert json.load(open(tmp_path / "out" / "sweep_seed0" / name / "results.json"))["status"] == "complete"

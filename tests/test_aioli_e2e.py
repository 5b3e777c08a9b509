"""Aioli through main.py: the paper's command line (tiny model, few steps, tiny real-text data), its
artefacts, and a resume from a checkpoint taken in the middle of a probe."""
import json
import os
import shutil

import numpy as np
import pytest

from test_main_e2e import paper_flags, run_main

AIOLI = ["--aioli", "--lp_rounds", "1", "--lp_steps", "2", "--eta", "0.2", "--ema", "0.1", "--update_steps", "10",
         "--one_hot_factor", "0.625", "--aioli_normalize_A", "--max_steps", "20", "--num_ckpts", "2",
         "--run_name", "aioli"]


@pytest.fixture(scope="module")
def aioli_run(tiny_shards, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("aioli"))
    proc = run_main(paper_flags(tiny_shards, out, *AIOLI, "--checkpoint_every", "1", "--keep_checkpoints", "100"))
    assert proc.returncode == 0, proc.stderr
    return os.path.join(out, "aioli")


def test_paper_aioli_command_runs_and_records_rounds(aioli_run):
    results = json.load(open(os.path.join(aioli_run, "results.json")))
    assert results["method"] == "aioli" and results["status"] == "complete" and results["step"] == 20
    art = json.load(open(os.path.join(aioli_run, "aioli.json")))
    # rounds start after the 3 warmup steps and ceil(3 / 8) = 1 settling step (at 4 and 14); p is
    # updated after the 2 probes x 2 steps
    assert [r["step"] for r in art["rounds"]] == [8, 18] and art["settings"]["first_round_step"] == 4
    for r in art["rounds"]:
        A = np.array(r["A"])
        assert A.shape == (2, 2) and np.all(np.isfinite(A)) and np.all(A >= 0)
        assert np.sum(A) == pytest.approx(1.0)  # --aioli_normalize_A
        w = np.array(r["weights"])
        assert w.sum() == pytest.approx(1.0) and np.all(w > 0.4) and np.all(w < 0.6)  # eta 0.2, normalized A
    # the trajectory: uniform through the warmup, the probes' smoothed one-hot mixtures, then p
    steps = [t["step"] for t in results["weights_trajectory"]]
    assert steps[:4] == [0, 4, 6, 8]
    assert results["weights_trajectory"][0]["weights"] == {"arxiv": 0.5, "stackexchange": 0.5}
    first = results["weights_trajectory"][1]["weights"]
    assert max(first.values()) == pytest.approx(0.625)  # 5 of the probe's 8 rows
    assert results["final_weights"] == pytest.approx(dict(zip(art["groups"], art["rounds"][-1]["weights"])))


def test_resume_from_the_middle_of_a_probe_is_identical(aioli_run, tiny_shards, tmp_path):
    crashed = tmp_path / "out"
    shutil.copytree(aioli_run, crashed / "aioli")
    os.remove(crashed / "aioli" / "results.json")
    os.remove(crashed / "aioli" / "aioli.json")
    ckpts = crashed / "aioli" / "checkpoints"
    for name in os.listdir(ckpts):
        if int(name.split("_")[1]) > 15:  # step 15: inside the first probe of the second round
            shutil.rmtree(ckpts / name)
    proc = run_main(paper_flags(tiny_shards, str(crashed), *AIOLI, "--checkpoint_every", "1",
                                "--keep_checkpoints", "100", "--resume"))
    assert proc.returncode == 0, proc.stderr
    for name in ("results.json", "aioli.json"):
        assert json.load(open(os.path.join(aioli_run, name))) == json.load(open(crashed / "aioli" / name))

"""The pipelines: scripts/run.sh SETTING PIPELINE (bodies in scripts/lib/pipelines.sh) and the paper-style
entry scripts scripts/<setting>/... that call it.

A stub interpreter (PYTHON) records every main.py and mixing_law_fitting.py call a pipeline makes, so
the control flow and flags of every setting are checked without training. The in-process tests then
replay what the stub recorded for a pipeline, stage after stage, with main.main and
mixing_law_fitting.main on real tiny runs: each stage reads the real files its predecessor wrote."""
import json
import os
import re
import shutil
import stat
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "scripts", "run.sh")
SETTINGS = {
    "arxiv_stackexchange": ["arxiv", "stackexchange"],
    "github_c4": ["github", "c4"],
    "book_stackexchange": ["book", "stackexchange"],
    "arxiv_book_stackexchange": ["arxiv", "book", "stackexchange"],
    "cc_github_wikipedia": ["cc", "github", "wikipedia"],
    "full": ["arxiv", "book", "c4", "cc", "github", "stackexchange", "wikipedia"],
}
# In this order: later pipelines reuse what earlier ones ran (dml the sweep, doremi the stratified run),
# and the Aioli variants are compared with the unrestricted run.
PIPELINES = ["stratified", "sweep", "dml", "skillit", "doremi", "doge", "odm", "ado", "aioli", "aioli_restricted",
             "aioli_static", "aioli_diagonal", "dynamic"]
# entry script (relative to scripts/<setting>/) -> pipeline
ENTRY = {"stratified.sh": "stratified", "sweep/run.sh": "sweep", "sweep/dynamic.sh": "dynamic", "dml/run.sh": "dml",
         "skillit/run.sh": "skillit", "doremi/run.sh": "doremi", "doge/run.sh": "doge", "odm/run.sh": "odm",
         "ado/run.sh": "ado", "aioli/run.sh": "aioli",
         "aioli/restricted.sh": "aioli_restricted", "aioli/static.sh": "aioli_static",
         "aioli/diagonal.sh": "aioli_diagonal"}
AIOLI_FLAGS = ("--lp_rounds", "--lp_steps", "--eta", "--ema", "--update_steps", "--one_hot_factor")
ENVIRONMENT = ("SLIMPAJAMA_DIR", "OUTPUT_DIR", "SEEDS", "PYTHON", "SWEEP_GRID", "SWEEP_POINTS", "AIOLI_PRIOR",
               "PRIOR_STEPS", "BREAK_STEPS", "REMAINING_STEPS", "RUNNER")

# Stands in for `python` (bash: a Python stub's start-up would dominate the test): logs its argv
# (unit separator between arguments, record separator after each call) and writes what each stage's
# successor reads.
STUB = r"""#!/usr/bin/env bash
printf '%s\037' "$@" >> "$STUB_LOG"
printf '\036' >> "$STUB_LOG"
ARGS=("$@")
last() {
  local v="" prev="" a
  for a in "${ARGS[@]}"; do [[ $prev == "$1" ]] && v=$a; prev=$a; done
  printf '%s' "$v"
}
has() { local a; for a in "${ARGS[@]}"; do [[ $a == "$1" ]] && return 0; done; return 1; }
if [[ $(basename "$1") == run_many.py ]]; then  # RUNNER: run the stage's queued commands one by one
  while IFS= read -r line; do eval "$line"; done < "$2"
elif [[ $(basename "$1") == main.py ]]; then
  run="$(last --output_dir)/$(last --run_name)"
  mkdir -p "$run"
  if has --save_model; then mkdir -p "$run/model"; fi
  if has --doremi; then echo '{"average_weights": [1]}' > "$run/doremi.json"; fi
  if has --doge; then echo '{"average_weights": [1]}' > "$run/doge.json"; fi
  if has --odm; then echo '{"average_weights": [1]}' > "$run/odm.json"; fi
  if has --ado; then echo '{"average_weights": [1]}' > "$run/ado.json"; fi
  echo '{"status": "complete"}' > "$run/results.json"
else
  out=$(last --output)
  mkdir -p "$(dirname "$out")"
  if [[ $2 == cover ]]; then
    k=$(last --k)
    if [[ -n $(last --grid) ]]; then
      awk -v g="$(last --grid)" 'BEGIN { n = int(1 / g + 1.5)
        for (i = 0; i < n; i++) printf "%.6f,%.6f\n", i / (n - 1), 1 - i / (n - 1) }' > "${out%.json}.txt"
    else
      for ((i = 0; i < $(last --n); i++)); do
        row=""; for ((j = 0; j < k; j++)); do row+="${row:+,}0.$((i + j + 1))"; done; echo "$row"
      done > "${out%.json}.txt"
    fi
    echo '[]' > "$out"
  else
    echo "{\"command\": \"$2\"}" > "$out"
  fi
fi
"""


def run_script(argv, env, cwd=None):
    return subprocess.run(["bash", *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def dispatch(env, setting, pipeline, *extra):
    return run_script([RUN, setting, pipeline, *extra], env)


def flag(argv, name):
    """The value main.py would see for `name` (argparse: the last occurrence wins)."""
    hits = [i for i, a in enumerate(argv) if a == name]
    return argv[hits[-1] + 1] if hits else None


def values(argv, name):
    i = max(i for i, a in enumerate(argv) if a == name)
    out = []
    for a in argv[i + 1:]:
        if a.startswith("--"):
            break
        out.append(a)
    return out


@pytest.fixture
def stub_env(tmp_path):
    stub = tmp_path / "python"
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PYTHON=str(stub), STUB_LOG=str(tmp_path / "log"), SLIMPAJAMA_DIR="/data/sp",
               OUTPUT_DIR=str(tmp_path / "out"), SEEDS="0")
    for name in ENVIRONMENT[4:]:  # the pipelines' defaults, whatever the caller's environment says
        env.pop(name, None)
    return env, tmp_path


def logged(tmp_path, clear=True):
    """Every call (argv, the script first) logged by the stub since the last clear."""
    path = tmp_path / "log"
    rows = [r.split("\x1f")[:-1] for r in path.read_text().split("\x1e")[:-1]] if path.exists() else []
    if clear and path.exists():
        path.unlink()
    return rows


def calls(tmp_path):
    """(main.py argvs, mixing_law_fitting.py argvs from the subcommand on) logged since the last call."""
    rows = logged(tmp_path)
    return [r for r in rows if os.path.basename(r[0]) == "main.py"], \
        [r[1:] for r in rows if os.path.basename(r[0]) == "mixing_law_fitting.py"]


def pipeline_functions():
    with open(os.path.join(ROOT, "scripts", "lib", "pipelines.sh")) as fh:
        return re.findall(r"^([a-z_]+)_pipeline\(\)", fh.read(), flags=re.M)


# -- the dispatcher ------------------------------------------------------------------------------------
def test_dispatcher_offers_every_pipeline_and_setting():
    help_ = run_script([RUN, "--help"], dict(os.environ))
    assert help_.returncode == 0 and help_.stderr == ""
    listed = help_.stdout.split("pipelines:")[1].split("environment:")[0]
    assert sorted(line.split()[0] for line in listed.strip().splitlines()) == sorted(pipeline_functions())
    assert sorted(PIPELINES) == sorted(pipeline_functions())
    settings = help_.stdout.split("settings")[1].split("pipelines:")[0]
    for setting, groups in SETTINGS.items():
        assert f"{setting} " in settings and " ".join(groups) in settings
    for name in ENVIRONMENT:
        assert name in help_.stdout.split("environment:")[1]
    bare = run_script([RUN], dict(os.environ))  # no arguments: the same text, as a usage error
    assert bare.returncode == 2 and bare.stdout == "" and bare.stderr == help_.stdout
    lib = os.path.join(ROOT, "scripts", "lib")
    for path in (RUN, os.path.join(lib, "common.sh"), os.path.join(lib, "pipelines.sh")):
        assert subprocess.run(["bash", "-n", path], capture_output=True).returncode == 0, path


@pytest.mark.parametrize("argv,named,valid", [
    (["nosuch", "doremi"], "nosuch", SETTINGS),
    (["full", "nosuch"], "nosuch", PIPELINES),
    (["github_c4"], None, PIPELINES),
    (["doremi", "full"], "doremi", SETTINGS),  # swapped
])
def test_dispatcher_refuses_unknown_names(stub_env, argv, named, valid):
    env, tmp = stub_env
    env.pop("SLIMPAJAMA_DIR")  # the names are checked first
    res = run_script([RUN, *argv, "--num_threads", "1"], env)
    assert res.returncode == 2 and res.stdout == ""
    (line,) = res.stderr.splitlines()
    assert named is None or f"'{named}'" in line
    assert all(re.search(rf"[ (]{v}[ )]", line) for v in valid), line
    assert logged(tmp) == []


@pytest.mark.parametrize("pipeline, stages", [
    ("doremi", ["doremi_reference", "doremi_proxy", "doremi_final"]),
    ("doge", ["doge_proxy", "doge_final"]),
    ("odm", ["odm_online", "odm_final"]),
    ("ado", ["ado_online", "ado_final"]),
    ("dynamic", ["dynamic_parents_seed0", "dynamic_children_seed0", "dynamic_parents_seed1",
                 "dynamic_children_seed1"]),
])
def test_runner_takes_each_stage_of_the_proxy_and_dynamic_pipelines(stub_env, pipeline, stages):
    """With RUNNER set, every stage's runs (over the seeds; the dynamic sweep's parents, then children) are
    written to <stage>.commands.txt and handed to run_many.py, which ends before the next stage starts;
    the runs are the same as without RUNNER."""
    env, tmp = stub_env
    env.update(SEEDS="0 1", SWEEP_GRID="0.25")  # the dynamic sweep: 5 parents of 5 children each
    assert dispatch(env, "arxiv_stackexchange", pipeline).returncode == 0
    plain = sorted(map(tuple, calls(tmp)[0]))
    shutil.rmtree(tmp / "out")
    res = dispatch(dict(env, RUNNER="local:2"), "arxiv_stackexchange", pipeline)
    assert res.returncode == 0, res.stderr
    rows = logged(tmp)
    handed = [os.path.basename(r[1]) for r in rows if os.path.basename(r[0]) == "run_many.py"]
    assert handed == [f"{stage}.commands.txt" for stage in stages]
    assert sorted(tuple(r) for r in rows if os.path.basename(r[0]) == "main.py") == plain
    per_stage = [len(open(tmp / "out" / "arxiv_stackexchange" / name).read().splitlines()) for name in handed]
    assert sum(per_stage) == len(plain) and min(per_stage) >= 2


# -- every setting and pipeline with the stub ----------------------------------------------------------
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_every_pipeline_with_a_stub(stub_env, setting):
    env, tmp = stub_env
    groups, k, full = SETTINGS[setting], len(SETTINGS[setting]), setting == "full"
    out = os.path.join(env["OUTPUT_DIR"], setting)
    swept = [os.path.join(out, "sweep_seed0"), os.path.join(out, "stratified_seed0")]  # what the fits read
    steps, seen = set(), {}
    for name in PIPELINES:
        res = dispatch(env, setting, name, "--num_threads", "1")
        assert res.returncode == 0, (name, res.stderr)
        runs, fits = calls(tmp)
        seen[name] = runs
        for argv in runs:  # the setting's groups and data, the user's flags last, one seed
            assert argv[-2:] == ["--num_threads", "1"], (name, argv)
            assert values(argv, "--slice_list") == groups
            assert flag(argv, "--train_data_dir") == flag(argv, "--val_data_dir") == "/data/sp"
            assert flag(argv, "--selection_seed") == "0"
            steps.add(flag(argv, "--max_steps"))
        names = [os.path.relpath(os.path.join(flag(a, "--output_dir"), flag(a, "--run_name")), out) for a in runs]
        if name == "stratified":
            assert names == ["stratified_seed0"] and "--save_model" in runs[0]
            assert flag(runs[0], "--sample_rule") == "stratified"
        elif name == "sweep":
            # k=2: 11 grid points minus the uniform one (the stratified run); k>=3: SWEEP_POINTS=10
            assert names == [f"sweep_seed0/mix{i:02d}" for i in range(1, 12) if k > 2 and i <= 10 or k == 2 and i != 6]
            with open(os.path.join(out, "sweep_seed0", "mixtures.txt")) as fh:
                mixtures = [[float(x) for x in line.split(",")] for line in fh.read().split()]
            for argv in runs:
                weights = [float(x) for x in values(argv, "--proportions")]
                assert flag(argv, "--sample_rule") == "mixture" and weights in mixtures and len(set(weights)) > 1
            assert [f[0] for f in fits] == ["cover", "best"]
            assert values(fits[1], "--run_dir") == swept
            assert flag(fits[1], "--output") == os.path.join(out, "grid_seed0.json")
            assert os.path.isfile(os.path.join(out, "grid_seed0.json"))
        elif name == "dml":
            assert names == ["dml_final_seed0"] and [f[0] for f in fits] == ["linreg"]  # the sweep is reused
            assert values(fits[0], "--run_dir") == swept
            fitted = os.path.join(out, "dml_fit_seed0.json")
            assert flag(runs[0], "--proportions_file") == flag(fits[0], "--output") == fitted
            assert flag(runs[0], "--custom_name") == "dml_final"
        elif name == "skillit":
            graph = os.path.join(out, "skillit_graph_seed0")
            assert names == [f"skillit_graph_seed0/onehot_{g}" for g in groups] + ["skillit_seed0"]
            for i, argv in enumerate(runs[:k]):
                assert [float(x) for x in values(argv, "--proportions")] == [float(i == j) for j in range(k)]
            assert [f[0] for f in fits] == ["skills_graph"] and values(fits[0], "--run_dir") == [graph]
            online = runs[-1]
            assert "--skillit" in online and flag(online, "--update_steps") is not None
            assert flag(online, "--graph_path") == flag(fits[0], "--output") == os.path.join(graph, "graph.json")
        elif name == "doremi":
            assert names == ["doremi_proxy_seed0", "doremi_final_seed0"]  # the reference is the stratified run
            proxy, final = runs
            (reference,) = seen["stratified"]
            assert "--doremi" in proxy
            assert flag(proxy, "--doremi_reference_model_path") == os.path.join(out, "stratified_seed0")
            for f in ("--max_steps", "--batch_size"):  # the proxy sees as many tokens as the reference
                assert flag(proxy, f) == flag(reference, f)
            assert flag(final, "--proportions_file") == os.path.join(out, "doremi_proxy_seed0", "doremi.json")
            assert flag(final, "--custom_name") == "doremi_final" and flag(final, "--sample_rule") == "mixture"
        elif name == "doge":
            assert names == ["doge_proxy_seed0", "doge_final_seed0"]
            proxy, final = runs
            assert "--doge" in proxy and flag(proxy, "--custom_name") == "doge_proxy"
            assert flag(final, "--proportions_file") == os.path.join(out, "doge_proxy_seed0", "doge.json")
            assert flag(final, "--custom_name") == "doge_final" and flag(final, "--sample_rule") == "mixture"
        elif name in ("odm", "ado"):  # the online run, then a static run on its averaged weights
            assert names == [f"{name}_seed0", f"{name}_final_seed0"]
            online, final = runs
            assert f"--{name}" in online and flag(online, "--custom_name") is None
            if name == "ado":  # the schedule scaled to the setting's length
                schedule = [int(flag(online, f"--ado_{f}")) for f in ("ignore_steps", "start_step", "update_steps")]
                assert schedule == ([1000, 1000, 1000] if full else [250, 500, 250])
            assert flag(final, "--proportions_file") == os.path.join(out, f"{name}_seed0", f"{name}.json")
            assert flag(final, "--custom_name") == f"{name}_final" and flag(final, "--sample_rule") == "mixture"
        elif name.startswith("aioli"):
            custom = {"aioli": None, "aioli_restricted": "restricted", "aioli_static": "aioli_static",
                      "aioli_diagonal": "diagonal"}[name]
            assert names == [f"{name}_seed0"]
            (argv,) = runs
            assert "--aioli" in argv and "--aioli_normalize_A" in argv and flag(argv, "--custom_name") == custom
            assert ("--save_model" in argv) == full  # the full setting keeps its Aioli models
            row = {f: flag(argv, f) for f in AIOLI_FLAGS}
            unrestricted = {f: flag(seen["aioli"][0], f) for f in AIOLI_FLAGS}
            assert None not in unrestricted.values()
            if name == "aioli_static":  # one LearnParams, then fixed: no update schedule
                unrestricted.update({"--ema": None, "--update_steps": None})
                assert "--aioli_static" in argv
            if name == "aioli_diagonal":  # one-hot probes, its own update schedule
                assert row.pop("--update_steps") and unrestricted.pop("--update_steps")
                unrestricted["--one_hot_factor"] = "1"
                assert "--aioli_diagonal" in argv
            assert row == unrestricted
            if name == "aioli_restricted":  # uniform prior for half the run by default
                assert values(argv, "--aioli_prior") == ["1"] * k
                assert flag(argv, "--prior_steps") == str(int(flag(argv, "--max_steps")) // 2)
            else:
                assert flag(argv, "--aioli_prior") is None and flag(argv, "--prior_steps") is None
        else:  # dynamic: parents break at 2000, children continue each parent for 100 steps
            n = 11 if k == 2 else 10
            dyn = os.path.join(out, "dynamic_seed0")
            parents = [a for a in runs if flag(a, "--break_steps")]
            children = [a for a in runs if flag(a, "--resume_model_path")]
            assert len(parents) == n and len(children) == n * n and len(runs) == n + n * n
            assert {flag(a, "--break_steps") for a in parents} == {"2000"}
            assert {flag(a, "--remaining_steps") for a in children} == {"100"}
            assert {flag(a, "--resume_model_path") for a in children} == {os.path.join(dyn, f"parent{i:02d}")
                                                                           for i in range(1, n + 1)}
    assert len(steps) == 1  # every run of a setting has the same length
    # re-running a finished pipeline reuses every stage
    for name in ("doremi", "aioli_restricted"):
        res = dispatch(env, setting, name)
        assert res.returncode == 0 and calls(tmp)[0] == [] and "finished earlier" in res.stderr


def entry_scripts(setting):
    top = os.path.join(ROOT, "scripts", setting)
    return sorted(os.path.relpath(os.path.join(d, f), top)
                  for d, _, fs in os.walk(top) for f in fs if f.endswith(".sh"))


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_entry_scripts_call_the_dispatcher(stub_env, setting):
    """Every scripts/<setting>/... entry point is a one-line call of scripts/run.sh SETTING PIPELINE and,
    run from another directory, makes exactly the calls the dispatcher makes."""
    env, tmp = stub_env
    env.update(BREAK_STEPS="7", REMAINING_STEPS="3", SWEEP_GRID="0.5", SWEEP_POINTS="3")  # small sweeps
    out = env["OUTPUT_DIR"]
    scripts = entry_scripts(setting)
    assert "stratified.sh" in scripts and set(scripts) <= set(ENTRY), scripts
    for name in scripts:
        path = os.path.join(ROOT, "scripts", setting, name)
        assert os.access(path, os.X_OK), path
        lines = open(path).read().splitlines()
        assert lines[0] == "#!/usr/bin/env bash" and "set -euo pipefail" in lines, path
        comments = [ln for ln in lines[1:] if ln.startswith("#")]
        code = [ln for ln in lines[1:] if ln.strip() and not ln.startswith("#")]
        assert len(comments) <= 1 and len(code) == 2, path
        match = re.fullmatch(r'exec bash "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)/([./]+)/run\.sh" (\w+) (\w+) "\$@"',
                             code[1])
        assert match and match.group(2, 3) == (setting, ENTRY[name]), (path, code[1])
        results = []
        # the entry script from another directory, then the dispatcher, each on an empty OUTPUT_DIR
        for argv, cwd in (([path, "--num_threads", "1"], str(tmp)),
                          ([RUN, setting, ENTRY[name], "--num_threads", "1"], None)):
            shutil.rmtree(out, ignore_errors=True)
            res = run_script(argv, env, cwd=cwd)
            results.append((res.returncode, res.stderr, logged(tmp)))
        assert results[0] == results[1], name
        assert results[0][0] == 0 and results[0][2], (name, results[0][1])


def test_restricted_prior_from_the_environment(stub_env):
    env, tmp = stub_env
    env.update(AIOLI_PRIOR="3 7", PRIOR_STEPS="1000")
    res = dispatch(env, "github_c4", "aioli_restricted", "--eta", "0.5")
    assert res.returncode == 0, res.stderr
    (argv,) = calls(tmp)[0]
    assert values(argv, "--aioli_prior") == ["3", "7"] and flag(argv, "--prior_steps") == "1000"
    assert argv[-2:] == ["--eta", "0.5"] and flag(argv, "--eta") == "0.5"  # the user's flags win


def test_default_seeds_and_missing_data(stub_env):
    env, tmp = stub_env
    env.pop("SEEDS")
    for setting, pipeline, seeds in (("full", "stratified", ["0", "1", "2"]),
                                     ("github_c4", "stratified", ["0", "1", "2", "3", "4"]),
                                     ("full", "aioli_static", ["0", "1", "2"]),
                                     ("cc_github_wikipedia", "aioli", ["0", "1", "2", "3", "4"])):
        assert dispatch(env, setting, pipeline).returncode == 0
        assert [flag(a, "--selection_seed") for a in calls(tmp)[0]] == seeds
    env.pop("SLIMPAJAMA_DIR")
    res = dispatch(env, "full", "doge")
    assert res.returncode != 0 and "SLIMPAJAMA_DIR" in res.stderr and logged(tmp) == []


def test_interrupted_stages_are_resumed_or_restarted(stub_env):
    env, tmp = stub_env
    out = os.path.join(env["OUTPUT_DIR"], "github_c4")
    os.makedirs(os.path.join(out, "doge_proxy_seed0"))
    with open(os.path.join(out, "doge_proxy_seed0", "config.json"), "w") as fh:
        fh.write("{}")  # as if it died before its first checkpoint
    os.makedirs(os.path.join(out, "doge_final_seed0", "checkpoints", "step_00000040"))
    res = dispatch(env, "github_c4", "doge")
    assert res.returncode == 0, res.stderr
    proxy, final = calls(tmp)[0]
    assert "starting it again" in res.stderr and "--resume" not in proxy
    assert not os.path.exists(os.path.join(out, "doge_proxy_seed0", "config.json"))
    assert "resuming it" in res.stderr and "--resume" in final


# -- the stages in-process, on real tiny runs ----------------------------------------------------------
# Appended last to every call (the last value of a flag wins): a tiny model on the tiny shards.
TINY = ["--model", "tiny", "--checkpoint", "0", "--batch_size", "4", "--gradient_accumulation_steps", "1",
        "--context_length", "64", "--max_steps", "4", "--warmup_steps", "1", "--num_ckpts", "1",
        "--eval_batch_size", "4", "--max_eval_samples", "4", "--max_test_samples", "4", "--num_threads", "1",
        "--no_progress"]


def record(stub_env, data, pipeline, *extra, **environment):
    """The calls the arxiv_stackexchange pipeline makes (stub), with the stub's outputs removed again."""
    env, tmp = stub_env
    env.update(SLIMPAJAMA_DIR=data, SWEEP_GRID="0.5", **environment)
    res = dispatch(env, "arxiv_stackexchange", pipeline, *TINY, *extra)
    assert res.returncode == 0, res.stderr
    shutil.rmtree(env["OUTPUT_DIR"])
    return logged(tmp), os.path.join(env["OUTPUT_DIR"], "arxiv_stackexchange")


def replay(rows):
    """Run the recorded calls in this process, in order: main.main / mixing_law_fitting.main."""
    import main
    import mixing_law_fitting

    entry = {"main.py": main.main, "mixing_law_fitting.py": mixing_law_fitting.main}
    for argv in rows:
        try:
            entry[os.path.basename(argv[0])](argv[1:])
        except SystemExit as err:
            pytest.fail(f"{' '.join(argv)} exited with {err.code}")


def load(*parts):
    with open(os.path.join(*parts)) as fh:
        return json.load(fh)


@pytest.mark.slow
def test_doremi_stages_in_process(stub_env, tiny_shards):
    rows, out = record(stub_env, tiny_shards, "doremi")
    assert [os.path.basename(r[0]) for r in rows] == ["main.py"] * 3
    replay(rows)
    assert os.path.isfile(os.path.join(out, "stratified_seed0", "model", "model.safetensors"))
    learned = load(out, "doremi_proxy_seed0", "doremi.json")
    assert learned["groups"] == ["arxiv", "stackexchange"] and learned["updates"] == 4 and learned["history"]
    final = load(out, "doremi_final_seed0", "config.json")
    assert final["custom_name"] == "doremi_final"
    assert final["initial_weights"] == pytest.approx(learned["average_weights"])
    assert load(out, "doremi_final_seed0", "results.json")["status"] == "complete"


@pytest.mark.slow
def test_sweep_and_dml_stages_in_process(stub_env, tiny_shards):
    rows, out = record(stub_env, tiny_shards, "dml")
    stages = [os.path.basename(r[0]) if r[0].endswith("main.py") else r[1] for r in rows]
    assert stages == ["main.py", "cover", "main.py", "main.py", "linreg", "main.py"]
    replay(rows)
    # the uniform point of the 0.5 grid is the stratified run
    assert sorted(os.listdir(os.path.join(out, "sweep_seed0"))) == ["mix01", "mix03", "mixtures.json", "mixtures.txt"]
    fit = load(out, "dml_fit_seed0.json")
    final = load(out, "dml_final_seed0", "config.json")
    assert final["custom_name"] == "dml_final"
    assert final["initial_weights"] == pytest.approx(fit["optimal_mixture"])
    # the sweep pipeline on these outputs reuses every run and only picks the winner
    env, tmp = stub_env
    res = dispatch(env, "arxiv_stackexchange", "sweep", *TINY)
    assert res.returncode == 0 and "[pipeline] run " not in res.stderr, res.stderr
    (best,) = logged(tmp)
    assert best[1] == "best"
    replay([best])
    assert set(load(out, "grid_seed0.json")["proportions"]) == {"arxiv", "stackexchange"}


@pytest.mark.slow
def test_skillit_stages_in_process(stub_env, tiny_shards):
    rows, out = record(stub_env, tiny_shards, "skillit", "--update_steps", "2")
    stages = [os.path.basename(r[0]) if r[0].endswith("main.py") else r[1] for r in rows]
    assert stages == ["main.py", "main.py", "skills_graph", "main.py"]
    replay(rows)
    graph = load(out, "skillit_graph_seed0", "graph.json")
    assert graph["groups"] == ["arxiv", "stackexchange"] and len(graph["graph"]) == 2
    assert graph["runs"] == {g: [os.path.join(out, "skillit_graph_seed0", f"onehot_{g}")] for g in graph["groups"]}
    config = load(out, "skillit_seed0", "config.json")
    assert config["method"] == "skillit"
    assert config["graph_path"] == os.path.join(out, "skillit_graph_seed0", "graph.json")
    updates = load(out, "skillit_seed0", "skillit.json")["updates"]
    assert [u["step"] for u in updates] == [0, 2]


@pytest.mark.slow
def test_doge_stages_in_process(stub_env, tiny_shards):
    rows, out = record(stub_env, tiny_shards, "doge")
    assert [os.path.basename(r[0]) for r in rows] == ["main.py"] * 2
    replay(rows)
    learned = load(out, "doge_proxy_seed0", "doge.json")
    assert learned["groups"] == ["arxiv", "stackexchange"] and learned["updates"] == 4
    assert all("matrix" in h for h in learned["history"])
    final = load(out, "doge_final_seed0", "config.json")
    assert final["custom_name"] == "doge_final"
    assert final["initial_weights"] == pytest.approx(learned["average_weights"])


@pytest.mark.slow
@pytest.mark.parametrize("pipeline, extra", [("odm", ["--odm_warmup_steps", "1"]),
                                             ("ado", ["--max_steps", "32", "--ado_start_step", "32",
                                                      "--ado_update_steps", "16", "--ado_ignore_steps", "0"])])
def test_online_method_stages_in_process(stub_env, tiny_shards, pipeline, extra):
    rows, out = record(stub_env, tiny_shards, pipeline, *extra)
    assert [os.path.basename(r[0]) for r in rows] == ["main.py"] * 2
    replay(rows)
    learned = load(out, f"{pipeline}_seed0", f"{pipeline}.json")
    assert learned["groups"] == ["arxiv", "stackexchange"] and learned["steps"] == int(flag(rows[0], "--max_steps"))
    if pipeline == "ado":
        assert [f["accepted"] for f in learned["fits"]] == [True]
    final = load(out, f"{pipeline}_final_seed0", "config.json")
    assert final["custom_name"] == f"{pipeline}_final"
    assert final["initial_weights"] == pytest.approx(learned["average_weights"])


@pytest.mark.slow
def test_restricted_aioli_in_process(stub_env, tiny_shards):
    rows, out = record(stub_env, tiny_shards, "aioli_restricted", "--max_steps", "6", "--update_steps", "3",
                       "--prior_steps", "2", "--lp_rounds", "1", "--lp_steps", "1", AIOLI_PRIOR="3 1")
    replay(rows)
    config = load(out, "aioli_restricted_seed0", "config.json")
    assert config["custom_name"] == "restricted" and config["aioli_prior"] == [3.0, 1.0]
    assert load(out, "aioli_restricted_seed0", "results.json")["status"] == "complete"
    assert os.path.isfile(os.path.join(out, "aioli_restricted_seed0", "aioli.json"))

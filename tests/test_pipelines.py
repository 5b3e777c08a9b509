"""The pipelines (scripts/<setting>/..., bodies in scripts/lib/pipelines.sh): every setting's control flow
and flags with a stub interpreter (no training), then the two-group pipelines end to end on real tiny
runs (marked slow; main.py runs in a pre-imported, forked interpreter so that the runs fit the test
budget).

The `slow` mark is not registered yet; tests/conftest.py should add
`config.addinivalue_line("markers", "slow: end-to-end runs of main.py")` in `pytest_configure`."""
import json
import os
import stat
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = {
    "arxiv_stackexchange": ["arxiv", "stackexchange"],
    "github_c4": ["github", "c4"],
    "book_stackexchange": ["book", "stackexchange"],
    "arxiv_book_stackexchange": ["arxiv", "book", "stackexchange"],
    "cc_github_wikipedia": ["cc", "github", "wikipedia"],
    "full": ["arxiv", "book", "c4", "cc", "github", "stackexchange", "wikipedia"],
}
PIPELINES = ["stratified.sh", "sweep/run.sh", "dml/run.sh", "skillit/run.sh", "doremi/run.sh", "doge/run.sh",
             "aioli/run.sh", "aioli/restricted.sh"]
DYNAMIC = ["arxiv_stackexchange", "arxiv_book_stackexchange"]
ABLATIONS = ["aioli/static.sh", "aioli/diagonal.sh"]  # the full setting only
# The paper's Aioli rows: --lp_rounds, --lp_steps, --eta, --ema, --update_steps, --one_hot_factor
AIOLI_ROWS = {2: ("4", "4", "0.2", "0.1", "250", "0.625"), 3: ("4", "6", "0.1", "0.5", "250", "0.5"),
              7: ("2", "10", "1", "0.1", "200", "0.75")}
AIOLI_FLAGS = ("--lp_rounds", "--lp_steps", "--eta", "--ema", "--update_steps", "--one_hot_factor")

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
if [[ $(basename "$1") == main.py ]]; then
  run="$(last --output_dir)/$(last --run_name)"
  mkdir -p "$run"
  if has --save_model; then mkdir -p "$run/model"; fi
  if has --doremi; then echo '{"average_weights": [1]}' > "$run/doremi.json"; fi
  if has --doge; then echo '{"average_weights": [1]}' > "$run/doge.json"; fi
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


def run_script(path, env, extra=()):
    return subprocess.run(["bash", path, *extra], env=env, capture_output=True, text=True, timeout=600)


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
    return env, tmp_path


def calls(tmp_path, clear=True):
    """(main.py argvs, fitting subcommands) logged by the stub since the last call."""
    path = tmp_path / "log"
    rows = [r.split("\x1f")[:-1] for r in path.read_text().split("\x1e")[:-1]] if path.exists() else []
    if clear and path.exists():
        path.unlink()
    return [r for r in rows if os.path.basename(r[0]) == "main.py"], [r[1] for r in rows if r[0].endswith("fitting.py")]


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_every_pipeline_with_a_stub(stub_env, setting):
    env, tmp = stub_env
    groups, k, full = SETTINGS[setting], len(SETTINGS[setting]), setting == "full"
    steps = "40000" if full else "5000"
    out = os.path.join(env["OUTPUT_DIR"], setting)
    extra = (["sweep/dynamic.sh"] if setting in DYNAMIC else []) + (ABLATIONS if full else [])
    assert sorted(extra + PIPELINES) == sorted(scripts_of(setting))  # every script of the setting is checked
    for name in PIPELINES + extra:
        path = os.path.join(ROOT, "scripts", setting, name)
        assert os.access(path, os.X_OK), path
        res = run_script(path, env, ["--num_threads", "1"])
        assert res.returncode == 0, (name, res.stderr)
        runs, fits = calls(tmp)
        for argv in runs:  # the common flags, the user's flags last, one seed
            assert argv[-2:] == ["--num_threads", "1"], (name, argv)
            assert values(argv, "--slice_list") == groups and flag(argv, "--train_data_dir") == "/data/sp"
            assert flag(argv, "--model") == "EleutherAI/pythia-160m" and flag(argv, "--lr") == "0.0005"
            assert flag(argv, "--selection_seed") == "0" and flag(argv, "--context_length") == "2048"
            assert flag(argv, "--max_steps") == steps
        names = [os.path.relpath(os.path.join(flag(a, "--output_dir"), flag(a, "--run_name")), out) for a in runs]
        if name == "stratified.sh":
            assert names == ["stratified_seed0"] and "--save_model" in runs[0]
        elif name == "sweep/run.sh":
            # k=2: 11 grid points minus the uniform one (the stratified run); k>=3: SWEEP_POINTS=10
            assert names == [f"sweep_seed0/mix{i:02d}" for i in range(1, 12) if k > 2 and i <= 10 or k == 2 and i != 6]
            assert fits == ["cover", "best"] and os.path.isfile(os.path.join(out, "grid_seed0.json"))
        elif name == "dml/run.sh":
            assert names == ["dml_final_seed0"] and fits == ["linreg"]  # the sweep is reused
            assert flag(runs[0], "--proportions_file") == os.path.join(out, "dml_fit_seed0.json")
        elif name == "skillit/run.sh":
            assert names == [f"skillit_graph_seed0/onehot_{g}" for g in groups] + ["skillit_seed0"]
            for i, argv in enumerate(runs[:k]):
                assert [float(x) for x in values(argv, "--proportions")] == [float(i == j) for j in range(k)]
            online = runs[-1]
            assert flag(online, "--update_steps") == ("400" if full else "500") and flag(online, "--eta") == "0.2"
            assert flag(online, "--graph_path") == os.path.join(out, "skillit_graph_seed0", "graph.json")
        elif name == "doremi/run.sh":
            assert names == ["doremi_proxy_seed0", "doremi_final_seed0"]  # the reference is the stratified run
            proxy, final = runs
            assert flag(proxy, "--doremi_reference_model_path") == os.path.join(out, "stratified_seed0")
            assert flag(proxy, "--gradient_accumulation_steps") == (None if full else "2")
            assert flag(proxy, "--batch_size") == "8" and flag(proxy, "--max_steps") == steps
            assert flag(final, "--proportions_file") == os.path.join(out, "doremi_proxy_seed0", "doremi.json")
            assert flag(final, "--custom_name") == "doremi_final"
        elif name == "doge/run.sh":
            proxy, final = runs
            expect = ("4", "4", "0.1") if full else (("6", "2", "0.01") if k == 2 else ("4", "4", "0.01"))
            got = tuple(flag(proxy, f) for f in ("--batch_size", "--doge_val_batch_size", "--doge_mu"))
            assert got == expect
            assert flag(final, "--proportions_file") == os.path.join(out, "doge_proxy_seed0", "doge.json")
            assert flag(final, "--custom_name") == "doge_final"
        elif name.startswith("aioli/"):
            variant = os.path.basename(name)[:-3]
            run_name, custom = {"run": ("aioli", None), "restricted": ("aioli_restricted", "restricted"),
                                "static": ("aioli_static", "aioli_static"),
                                "diagonal": ("aioli_diagonal", "diagonal")}[variant]
            assert names == [f"{run_name}_seed0"]
            (argv,) = runs
            assert "--aioli" in argv and "--aioli_normalize_A" in argv and flag(argv, "--custom_name") == custom
            assert flag(argv, "--num_ckpts") == "20" and ("--save_model" in argv) == full
            assert flag(argv, "--eval_batch_size") == ("16" if full else None)
            row = dict(zip(AIOLI_FLAGS, AIOLI_ROWS[k]))
            if variant == "static":  # one LearnParams, then fixed: no update schedule
                row.update({"--ema": None, "--update_steps": None})
                assert "--aioli_static" in argv
            if variant == "diagonal":
                row.update({"--update_steps": "2000", "--one_hot_factor": "1"})
                assert "--aioli_diagonal" in argv
            assert {f: flag(argv, f) for f in AIOLI_FLAGS} == row
            if variant == "restricted":  # uniform prior for half the run by default
                assert values(argv, "--aioli_prior") == ["1"] * k
                assert flag(argv, "--prior_steps") == str(int(steps) // 2)
            else:
                assert flag(argv, "--aioli_prior") is None and flag(argv, "--prior_steps") is None
        else:  # dynamic: parents break at 2000, children continue each parent for 100 steps
            n = 11 if k == 2 else 10
            parents = [a for a in runs if flag(a, "--break_steps")]
            children = [a for a in runs if flag(a, "--resume_model_path")]
            assert len(parents) == n and len(children) == n * n
            assert {flag(a, "--break_steps") for a in parents} == {"2000"}
            assert {flag(a, "--remaining_steps") for a in children} == {"100"}
    # re-running a finished pipeline reuses every stage
    for name in ("doremi/run.sh", "aioli/restricted.sh"):
        res = run_script(os.path.join(ROOT, "scripts", setting, name), env)
        assert res.returncode == 0 and calls(tmp)[0] == [] and "finished earlier" in res.stderr


def scripts_of(setting):
    top = os.path.join(ROOT, "scripts", setting)
    return sorted(os.path.relpath(os.path.join(d, f), top) for d, _, fs in os.walk(top) for f in fs if f.endswith(".sh"))


def test_entry_scripts_are_thin_and_parse():
    """Every scripts/<setting>/... entry point parses, keeps strict mode and only calls its lib pipeline."""
    for setting in SETTINGS:
        for name in scripts_of(setting):
            path = os.path.join(ROOT, "scripts", setting, name)
            assert subprocess.run(["bash", "-n", path], capture_output=True).returncode == 0, path
            code = [ln for ln in open(path).read().splitlines() if ln.strip() and not ln.startswith("#")]
            assert code[0] == "set -euo pipefail" and code[-2] == f"setting {setting}", path
            assert code[-1].endswith('_pipeline "$@"') and len(code) == 4, path
    for lib in ("common.sh", "pipelines.sh"):
        path = os.path.join(ROOT, "scripts", "lib", lib)
        assert subprocess.run(["bash", "-n", path], capture_output=True).returncode == 0, path


def test_restricted_prior_from_the_environment(stub_env):
    env, tmp = stub_env
    env.update(AIOLI_PRIOR="3 7", PRIOR_STEPS="1000")
    res = run_script(os.path.join(ROOT, "scripts", "github_c4", "aioli", "restricted.sh"), env, ["--eta", "0.5"])
    assert res.returncode == 0, res.stderr
    (argv,) = calls(tmp)[0]
    assert values(argv, "--aioli_prior") == ["3", "7"] and flag(argv, "--prior_steps") == "1000"
    assert argv[-2:] == ["--eta", "0.5"] and flag(argv, "--eta") == "0.5"  # the user's flags win


def test_default_seeds_and_missing_data(stub_env):
    env, tmp = stub_env
    env.pop("SEEDS")
    for setting, script, seeds in (("full", "stratified.sh", ["0", "1", "2"]),
                                   ("github_c4", "stratified.sh", ["0", "1", "2", "3", "4"]),
                                   ("full", "aioli/static.sh", ["0", "1", "2"]),
                                   ("cc_github_wikipedia", "aioli/run.sh", ["0", "1", "2", "3", "4"])):
        assert run_script(os.path.join(ROOT, "scripts", setting, script), env).returncode == 0
        assert [flag(a, "--selection_seed") for a in calls(tmp)[0]] == seeds
    env.pop("SLIMPAJAMA_DIR")
    res = run_script(os.path.join(ROOT, "scripts", "full", "doge", "run.sh"), env)
    assert res.returncode != 0 and "SLIMPAJAMA_DIR" in res.stderr


# -- real runs (tiny model, tiny shards) --------------------------------------------------------------
TINY = ["--model", "tiny", "--max_steps", "6", "--batch_size", "4", "--context_length", "64", "--num_ckpts", "2",
        "--max_eval_samples", "4", "--warmup_steps", "1", "--num_threads", "1", "--no_progress",
        "--slice_list", "arxiv", "stackexchange"]


# A warm interpreter: importing torch and transformers costs ~5 s per main.py call, which would put
# these eleven runs far over the test budget. The server imports them once and forks a child per
# call; the client (the PYTHON the scripts use) passes its argv, cwd, environment and stdio file
# descriptors and exits with the child's status, so each script runs main.py for real.
SERVER = r"""
import json, os, runpy, socket, sys, traceback
sys.path.insert(0, sys.argv[2])
import torch, transformers, transformers.models.gpt_neox.modeling_gpt_neox, scipy.optimize  # noqa: E401
import main, mixing_law_fitting  # noqa: E401
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sys.argv[1])
srv.listen()
print("ready", flush=True)
while True:
    conn, _ = srv.accept()
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    req = json.loads(data)
    pid = os.fork()
    if pid == 0:
        srv.close()
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
        os.environ.clear()
        os.environ.update(req["env"])
        os.chdir(req["cwd"])
        sys.argv = req["argv"]
        sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
        code = 0
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
        except SystemExit as err:
            code = err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    for fd in fds:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    conn.sendall(str(os.waitstatus_to_exitcode(status)).encode())
    conn.close()
"""
CLIENT = r"""
import json, os, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(os.environ["WARM_PYTHON_SOCKET"])
req = {"argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}
socket.send_fds(sock, [json.dumps(req).encode()], [0, 1, 2])
sys.exit(int(sock.recv(16) or 1))
"""


@pytest.fixture(scope="module")
def real_env(tiny_shards, tmp_path_factory):
    if not hasattr(os, "fork") or not hasattr(__import__("socket"), "send_fds"):
        pytest.skip("the warm interpreter needs fork and Unix sockets")
    out = tmp_path_factory.mktemp("pipelines")
    tools = tmp_path_factory.mktemp("warm")
    client = tools / "python"
    client.write_text(f"#!{sys.executable}\n{CLIENT}")
    client.chmod(client.stat().st_mode | stat.S_IXUSR)
    sock = str(tools / "sock")
    env = dict(os.environ, PYTHON=str(client), WARM_PYTHON_SOCKET=sock, SLIMPAJAMA_DIR=tiny_shards,
               OUTPUT_DIR=str(out), SEEDS="0", SWEEP_GRID="0.5", OMP_NUM_THREADS="1", WANDB_MODE="disabled",
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    server = subprocess.Popen([sys.executable, "-c", SERVER, sock, ROOT], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        yield env, os.path.join(str(out), "arxiv_stackexchange")
    finally:
        server.kill()
        server.wait()


def real(env, name, *extra):
    res = run_script(os.path.join(ROOT, "scripts", "arxiv_stackexchange", name), env, [*TINY, *extra])
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def load(*parts):
    with open(os.path.join(*parts)) as fh:
        return json.load(fh)


@pytest.mark.slow
def test_doremi_pipeline(real_env):
    env, out = real_env
    real(env, "doremi/run.sh")
    assert os.path.isfile(os.path.join(out, "stratified_seed0", "model", "model.safetensors"))
    learned = load(out, "doremi_proxy_seed0", "doremi.json")
    assert learned["groups"] == ["arxiv", "stackexchange"] and learned["updates"] == 6 and learned["history"]
    final = load(out, "doremi_final_seed0", "config.json")
    assert final["custom_name"] == "doremi_final"
    assert final["initial_weights"] == pytest.approx(learned["average_weights"])
    assert load(out, "doremi_final_seed0", "results.json")["status"] == "complete"


@pytest.mark.slow
def test_sweep_and_dml_pipelines(real_env):
    env, out = real_env
    real(env, "dml/run.sh")  # runs the sweep (the stratified run is the uniform point), fits, final run
    assert sorted(os.listdir(os.path.join(out, "sweep_seed0"))) == ["mix01", "mix03", "mixtures.json", "mixtures.txt"]
    fit = load(out, "dml_fit_seed0.json")
    final = load(out, "dml_final_seed0", "config.json")
    assert final["initial_weights"] == pytest.approx(fit["optimal_mixture"])
    res = real(env, "sweep/run.sh")  # reuses every run, picks the winner
    assert "[pipeline] run " not in res.stderr
    assert set(load(out, "grid_seed0.json")["proportions"]) == {"arxiv", "stackexchange"}


@pytest.mark.slow
def test_skillit_pipeline(real_env):
    env, out = real_env
    real(env, "skillit/run.sh", "--update_steps", "2")
    graph = load(out, "skillit_graph_seed0", "graph.json")
    assert graph["groups"] == ["arxiv", "stackexchange"] and len(graph["graph"]) == 2
    updates = load(out, "skillit_seed0", "skillit.json")["updates"]
    assert [u["step"] for u in updates] == [0, 2, 4]


@pytest.mark.slow
def test_doge_pipeline_restarts_an_interrupted_stage(real_env):
    env, out = real_env
    crashed = os.path.join(out, "doge_proxy_seed0")
    os.makedirs(crashed)
    with open(os.path.join(crashed, "config.json"), "w") as fh:
        fh.write("{}")  # as if it died before its first checkpoint
    res = real(env, "doge/run.sh")
    assert "starting it again" in res.stderr
    learned = load(out, "doge_proxy_seed0", "doge.json")
    assert learned["updates"] == 6 and learned["settings"]["val_batch_size"] == 2
    assert all("matrix" in h for h in learned["history"])
    final = load(out, "doge_final_seed0", "config.json")
    assert final["custom_name"] == "doge_final"
    assert final["initial_weights"] == pytest.approx(learned["average_weights"])


@pytest.mark.slow
def test_restricted_aioli_pipeline(real_env):
    env, out = real_env
    real(dict(env, AIOLI_PRIOR="3 1"), "aioli/restricted.sh", "--update_steps", "3", "--prior_steps", "2",
         "--lp_rounds", "1", "--lp_steps", "1")
    config = load(out, "aioli_restricted_seed0", "config.json")
    assert config["custom_name"] == "restricted" and config["aioli_prior"] == [3.0, 1.0]
    assert load(out, "aioli_restricted_seed0", "results.json")["status"] == "complete"
    assert os.path.isfile(os.path.join(out, "aioli_restricted_seed0", "aioli.json"))

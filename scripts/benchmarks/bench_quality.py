"""The paper's Table 2 at CPU scale: every method on several settings of the embedded demo corpus
(tiny model), several seeds, then the table of average test perplexity against stratified.

    python scripts/benchmarks/bench_quality.py [--quick] [-j 2] [--seeds 0 1 2] [--steps N]
        [--settings NAME ...] [--output_dir DIR] [--restricted_on SETTING] [--prior P ...]
        [--data DIR [--tokenizer TOK]]

`--data` runs the same table on other text (a held-out check of recipes chosen on the demo): anything
main.py's --train_data_dir takes, holding the groups of the chosen settings.

Each run is one `main.py` subprocess; the stages of a baseline (sweep -> best/linreg fit -> final run,
one-hot runs -> skills graph -> Skill-it, proxy or online run -> final run) mirror scripts/lib/pipelines.sh and
form a job graph run by `-j` workers. A run whose directory holds results.json is reused, so running
the same command again continues an interrupted bench; a finished run whose config.json records other
flags than the command asks for (an earlier recipe, another --steps) is refused, not reused. Writes
<output_dir>/table.md and table.json.
`--quick` (40 steps, one seed, one pair and the restricted setting, a smaller sweep) is the smoke
test: a few minutes on 2 cores at -j 2; the full size is 240 steps, 3 seeds, six settings plus the
restricted one, the paper's methods: 303 jobs, 249 of them training runs of about 95 s each at -j 2 here,
so about 3.3 hours on 2 cores and 5 minutes at -j 16 on 16 cores sharing one H200 (with `--methods`
adding ODM and ADO: 375 jobs, 4.5 hours on 2 cores; the restricted setting alone, 27 jobs: 35 minutes).
`--settings`, `--seeds` and `--methods` run a part of it; the same output directory gathers the parts,
and a folder moved or copied whole is still reused.
"""
import argparse
import concurrent.futures as cf
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from errors import OneLineArgumentParser, UsageError, exit_on_usage_error  # noqa: E402
from trainer.args import build_parser as main_parser  # noqa: E402
from trainer.config import demo_probe_settings  # noqa: E402

MAIN = os.path.join(ROOT, "main.py")
FIT = os.path.join(ROOT, "mixing_law_fitting.py")
MAIN_PARSER = main_parser()  # main.py's flags: what a finished run recorded is compared with them

SETTINGS = {
    "arxiv_stackexchange": ["arxiv", "stackexchange"],
    "github_wikipedia": ["github", "wikipedia"],
    "book_stackexchange": ["book", "stackexchange"],
    "book_wikipedia": ["book", "wikipedia"],
    "arxiv_book_stackexchange": ["arxiv", "book", "stackexchange"],
    "book_github_wikipedia": ["book", "github", "wikipedia"],
    "book_stackexchange_wikipedia": ["book", "stackexchange", "wikipedia"],
    "arxiv_book_wikipedia": ["arxiv", "book", "wikipedia"],
    "all": ["arxiv", "book", "github", "stackexchange", "wikipedia"],
}
RESTRICTED = "restricted"  # a pseudo-setting: the groups of --restricted_on, a bad prior first

# Flags of every run (warmup and max_steps follow the run length). --max_eval_samples bounds only the
# periodic validation; the final test metric uses the whole test split.
COMMON = ["--model", "tiny", "--checkpoint", "0", "--context_length", "128", "--batch_size", "8",
          "--eval_batch_size", "32", "--lr", "2e-3", "--lr_scheduler", "linear_warmup_cosine",
          "--end_lr", "2e-4", "--num_ckpts", "4", "--max_eval_samples", "32"]
# The full size's settings: the paper's shape (three pairs, two triples, every group). Its pairs are those
# whose best static mixture is off uniform on this corpus (the pair scan in docs/bench_quality_results.md:
# only book/stackexchange and book/wikipedia are; arxiv/stackexchange is a control where uniform is best).
# github_wikipedia, whose best mixture is uniform, stays selectable with --settings.
FULL_SETTINGS = ["arxiv_stackexchange", "book_wikipedia", "book_stackexchange", "arxiv_book_stackexchange",
                 "book_github_wikipedia", "all"]
SIZES = {
    # grid: the k=2 sweep step (interior points; the one-hot endpoints are always in the sweep);
    # cover_n: interior points of the k>=3 Dirichlet cover (plus the k one-hots)
    "full": {"steps": 240, "seeds": [0, 1, 2], "settings": [*FULL_SETTINGS, RESTRICTED], "grid": 0.25,
             "cover_n": {3: 3, 5: 3}},
    "quick": {"steps": 40, "seeds": [0], "settings": ["book_stackexchange", RESTRICTED], "grid": 0.25,
              "cover_n": {3: 2, 5: 2}},
}

# Aioli's whole recipe; aioli_flags() fills in what depends on the setting. The estimator flags are
# main.py's defaults (trend-aware fit, noise gate z = 1, perplexity objective, antithetic order, no
# probes in the warmup), written out so that the table says what ran. --lp_eval_samples: see probe_eval_windows.
AIOLI_FLAGS = ["--aioli", "--lp_rounds", "{lp_rounds}", "--lp_steps", "{lp_steps}",
               "--one_hot_factor", "{one_hot_factor}", "--eta", "{eta}", "--aioli_normalize_A",
               "--update_steps", "{update_steps}", "--lp_eval_samples", "{lp_eval_samples}",
               "--aioli_trend", "1", "--aioli_noise_z", "1", "--aioli_objective", "perplexity",
               "--aioli_probe_order", "antithetic"]


METHODS = ["stratified", "grid", "DML", "Skill-it", "DoReMi", "DoGE", "ODM", "ODM final", "ADO", "ADO final", "Aioli"]
# What --methods picks from (stratified and the grid sweep always run: they are every table's reference and the
# inputs of DML and Skill-it). The default is the paper's Table 2; ODM and ADO are opt-in, since at these
# sizes the exact sampler rounds their policies to the stratified batches (docs/bench_quality_results.md).
METHOD_CHOICES = ["DML", "Skill-it", "DoReMi", "DoGE", "ODM", "ADO", "Aioli"]
PAPER_METHODS = ["DML", "Skill-it", "DoReMi", "DoGE", "Aioli"]

# The final run of each method below <output_dir>/<setting>/ (grid: the winner named in grid_seed<S>.json).
# ODM and ADO train the model online: their online run is a result, and so is the static run on its averaged
# weights (their pipelines' final stage, like DoReMi's and DoGE's).
RUNS = {"stratified": "stratified_seed{seed}", "DML": "dml_final_seed{seed}", "Skill-it": "skillit_seed{seed}",
        "DoReMi": "doremi_final_seed{seed}", "DoGE": "doge_final_seed{seed}", "ODM": "odm_seed{seed}",
        "ODM final": "odm_final_seed{seed}", "ADO": "ado_seed{seed}", "ADO final": "ado_final_seed{seed}",
        "Aioli": "aioli_seed{seed}"}
RESTRICTED_RUNS = {"bad_prior": "bad_prior_seed{seed}", "aioli_restricted": "aioli_restricted_seed{seed}",
                   "probes_only": "probes_only_seed{seed}"}


def table_methods(chosen):
    """The table's rows for the --methods chosen, in METHODS order (an online mixer brings its final run)."""
    rows = {"stratified", "grid", *chosen, *(f"{m} final" for m in chosen if m in ("ODM", "ADO"))}
    return [m for m in METHODS if m in rows]

_print_lock = threading.Lock()
_t0 = time.time()


def log(msg):
    with _print_lock:
        print(f"[bench +{time.time() - _t0:5.0f}s] {msg}", file=sys.stderr, flush=True)


def flag_value(flags, name, default=None):
    """The value after the last `name` in a flag list (argparse: the last one wins)."""
    idx = [i for i, a in enumerate(flags[:-1]) if a == name]
    return flags[idx[-1] + 1] if idx else default


# Rows that one round's probe evaluations read in all, whatever k: (lp_rounds x k + 1) evaluations of
# k groups x n windows. 144 = the pairs' 9 evaluations of 2 x 8 windows, whose cost was 1.01x stratified's
# wall time; at 8 windows per group a triple (13 evaluations) read 312 rows a round and all five groups
# (11 evaluations) 440: most of Aioli's 1.15x and 1.28x there (docs/bench_quality_results.md).
PROBE_EVAL_ROWS = 144


def probe_eval_windows(k, lp_rounds):
    """--lp_eval_samples that keeps a round's probe evaluations near PROBE_EVAL_ROWS rows: 8, 4, 3 windows per
    group for k = 2, 3, 5 (at least 2, so that a group's loss is not one window's)."""
    return max(2, round(PROBE_EVAL_ROWS / ((lp_rounds * k + 1) * k)))


def aioli_flags(k, steps):
    """AIOLI_FLAGS for k groups and a run of `steps` steps. Triples and more: the demo's probes
    (trainer.config.demo_probe_settings: share 0.5 for k = 3, 2/k above; 1-step probes, 4 repeats up to
    k = 3, 2 above) at eta 1. Pairs: the demo's share 0.625 and 4 repeats, but 2-step probes at eta 2
    (chosen when the first round's direction still came from the probe order, see the first section of
    docs/bench_quality_results.md; the same change made triples worse). Rounds of steps/4, lengthened
    on short runs so that the probes (lp_rounds x lp_steps x k steps) fit in a round."""
    ohf, lp_rounds, lp_steps = demo_probe_settings(k)
    eta = 1
    if k == 2:
        lp_steps, eta = 2, 2
    update = max(steps // 4, lp_rounds * lp_steps * k + 1)
    return [a.format(one_hot_factor=f"{ohf:.4g}", update_steps=update, lp_rounds=lp_rounds, lp_steps=lp_steps,
                     eta=eta, lp_eval_samples=probe_eval_windows(k, lp_rounds)) for a in AIOLI_FLAGS]


def ado_flags(steps):
    """ADO's schedule for a run of `steps` steps (the reference's: fits from step 1000 of 60000, every 1000
    steps, the first 1000 steps left out): the first fit at a quarter of the run, then every eighth, the
    first 5% of the steps left out; at 240 steps the first fit (step 60) has 5 points (every 10th step after
    the first 12)."""
    return ["--ado", "--ado_ignore_steps", str(steps // 20), "--ado_start_step", str(max(1, steps // 4)),
            "--ado_update_steps", str(max(1, steps // 8))]


def sweep_points(mixtures):
    """The cover's mixtures minus those with a zero weight (endpoints) and the uniform one (= stratified)."""
    return [m for m in mixtures if min(m) > 0 and max(m) - min(m) > 1e-6]


# ---------------------------------------------------------------- the job graph

class Task:
    """One subprocess. `done` is the file that proves it finished (results.json or the fit's output)."""

    def __init__(self, label, argv, done, run_dir=None, deps=()):
        self.label, self.argv, self.done, self.run_dir, self.deps = label, argv, done, run_dir, list(deps)
        self.log = (run_dir or os.path.splitext(done)[0]) + ".log"


class Plan:
    """Tasks keyed by their `done` file, in insertion order (deps are always added first), so a run that
    two settings need (the restricted setting's references) is planned once."""

    def __init__(self, out, steps, size, data_flags=()):
        self.out, self.steps, self.size = out, steps, size
        self.data_flags = list(data_flags)  # --train_data_dir/--val_data_dir/--tokenizer of every run (none: the demo)
        self.tasks = {}
        self.sweep_sizes = {}  # setting -> number of sweep runs (the extra-runs column)

    def add(self, task):
        assert all(d.done in self.tasks for d in task.deps)
        return self.tasks.setdefault(task.done, task)

    def train(self, setting, groups, seed, rel, flags, deps=()):
        run_dir = os.path.join(self.out, setting, rel)
        argv = [sys.executable, MAIN, *COMMON, *self.data_flags, "--max_steps", str(self.steps),
                "--warmup_steps", str(max(1, self.steps // 10)), "--slice_list", *groups,
                "--selection_seed", str(seed), *flags, "--output_dir", os.path.dirname(run_dir),
                "--run_name", os.path.basename(run_dir), "--no_progress", "--num_threads", "1"]
        return self.add(Task(f"{setting}/{rel}", argv, os.path.join(run_dir, "results.json"), run_dir, deps))

    def fit(self, setting, command, args, output, deps):
        argv = [sys.executable, FIT, command, *args, "--output", output]
        label = f"{setting}/{os.path.relpath(output, os.path.join(self.out, setting))}"
        return self.add(Task(label, argv, output, None, deps))

    def cover(self, setting, k, seed):
        """The sweep's mixtures, computed now (a second, no training) since they decide which runs exist."""
        path = os.path.join(self.out, setting, f"sweep_seed{seed}", "mixtures.json")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            how = ["--grid", str(self.size["grid"])] if k == 2 else \
                ["--n", str(self.size["cover_n"].get(k, 2 * k)), "--seed", str(seed)]
            proc = subprocess.run([sys.executable, FIT, "cover", "--k", str(k), *how, "--output", path],
                                  capture_output=True, text=True, cwd=ROOT)
            if proc.returncode:
                raise SystemExit(f"mixing_law_fitting.py cover failed:\n{proc.stderr[-2000:]}")
        with open(path) as fh:
            return sweep_points(json.load(fh))


def plan_references(plan, setting, seed):
    """stratified (also DoReMi's reference and the sweep's uniform point), the sweep and its winner."""
    groups, d = SETTINGS[setting], os.path.join(plan.out, setting)
    strat = plan.train(setting, groups, seed, RUNS["stratified"].format(seed=seed),
                       ["--sample_rule", "stratified", "--save_model"])
    k = len(groups)
    # The sweep: the k one-hot mixtures (Skill-it's graph runs, shared) plus the cover's interior points.
    points = [[1.0 if j == i else 0.0 for j in range(k)] for i in range(k)] + plan.cover(setting, k, seed)
    plan.sweep_sizes[setting] = max(plan.sweep_sizes.get(setting, 0), len(points))
    sweep = [plan.train(setting, groups, seed, f"sweep_seed{seed}/mix{i:02d}",
                        ["--sample_rule", "mixture", "--proportions", *(f"{w:.6g}" for w in p)])
             for i, p in enumerate(points, 1)]
    sweep_dirs = [os.path.join(d, f"sweep_seed{seed}"), strat.run_dir]
    plan.fit(setting, "best", ["--run_dir", *sweep_dirs], os.path.join(d, f"grid_seed{seed}.json"), [strat, *sweep])
    return strat, sweep, sweep_dirs


def plan_setting(plan, setting, seed, methods):
    """The runs of `methods` (names of METHOD_CHOICES) on one setting and seed, after the references."""
    groups, steps = SETTINGS[setting], plan.steps
    k = len(groups)
    strat, sweep, sweep_dirs = plan_references(plan, setting, seed)  # sweep[:k] are the one-hot runs
    if "DML" in methods:
        plan_dml(plan, setting, seed, strat, sweep, sweep_dirs)
    if "Skill-it" in methods:
        plan_skillit(plan, setting, seed, sweep, sweep_dirs)
    if "DoReMi" in methods:
        plan_doremi(plan, setting, seed, strat)
    if "DoGE" in methods:
        plan_doge(plan, setting, seed)
    for name in ("ODM", "ADO"):
        if name in methods:
            plan_online_mixer(plan, setting, seed, name)
    if "Aioli" in methods:
        plan.train(setting, groups, seed, RUNS["Aioli"].format(seed=seed), aioli_flags(k, steps))


def plan_dml(plan, setting, seed, strat, sweep, sweep_dirs):
    """DML: the static law fitted to the sweep, then one run at its optimum."""
    groups, d = SETTINGS[setting], os.path.join(plan.out, setting)
    fit = plan.fit(setting, "linreg", ["--run_dir", *sweep_dirs, "--seed", str(seed)],
                   os.path.join(d, f"dml_fit_seed{seed}.json"), [strat, *sweep])
    plan.train(setting, groups, seed, RUNS["DML"].format(seed=seed),
               ["--sample_rule", "mixture", "--proportions_file", fit.done], [fit])


def plan_skillit(plan, setting, seed, sweep, sweep_dirs):
    """Skill-it: the sweep's k one-hot runs -> skills graph -> the online run."""
    groups, d, steps = SETTINGS[setting], os.path.join(plan.out, setting), plan.steps
    k = len(groups)
    graph = plan.fit(setting, "skills_graph", ["--run_dir", sweep_dirs[0]],
                     os.path.join(d, f"skillit_graph_seed{seed}.json"), sweep[:k])
    plan.train(setting, groups, seed, RUNS["Skill-it"].format(seed=seed),
               ["--skillit", "--graph_path", graph.done, "--update_steps", str(max(1, steps // 4)),
                "--skillit_window", "3", "--eta", "0.2"], [graph])


def plan_doremi(plan, setting, seed, strat):
    """DoReMi: a proxy run against the stratified run as reference, then a static run on its averaged weights."""
    groups = SETTINGS[setting]
    proxy = plan.train(setting, groups, seed, f"doremi_proxy_seed{seed}",
                       ["--doremi", "--doremi_reference_model_path", strat.run_dir, "--doremi_mu", "0.01"], [strat])
    plan.train(setting, groups, seed, RUNS["DoReMi"].format(seed=seed),
               ["--sample_rule", "mixture", "--proportions_file", os.path.join(proxy.run_dir, "doremi.json")], [proxy])


def plan_doge(plan, setting, seed):
    """DoGE: a proxy run, then a static run on its averaged weights."""
    groups = SETTINGS[setting]
    proxy = plan.train(setting, groups, seed, f"doge_proxy_seed{seed}",
                       ["--doge", "--doge_val_batch_size", "4", "--doge_mu", "0.01"])
    plan.train(setting, groups, seed, RUNS["DoGE"].format(seed=seed),
               ["--sample_rule", "mixture", "--proportions_file", os.path.join(proxy.run_dir, "doge.json")], [proxy])


def plan_online_mixer(plan, setting, seed, name):
    """ODM or ADO: the online run (ODM's bandit starts after the run's warmup), then a static run on its
    averaged weights."""
    groups = SETTINGS[setting]
    flags = ["--odm"] if name == "ODM" else ado_flags(plan.steps)
    online = plan.train(setting, groups, seed, RUNS[name].format(seed=seed), flags)
    learned = os.path.join(online.run_dir, f"{name.lower()}.json")
    plan.train(setting, groups, seed, RUNS[f"{name} final"].format(seed=seed),
               ["--sample_rule", "mixture", "--proportions_file", learned], [online])


def plan_restricted(plan, ref, prior, seed):
    """The bad prior alone, Aioli from it, and its probes alone (p frozen at the prior); the references
    (stratified, best grid point) are the unrestricted runs of setting `ref`."""
    groups, steps = SETTINGS[ref], plan.steps
    plan_references(plan, ref, seed)
    p = [f"{w:g}" for w in prior]
    restricted = aioli_flags(len(groups), steps) + ["--aioli_prior", *p, "--prior_steps", str(steps // 3)]
    plan.train(RESTRICTED, groups, seed, RESTRICTED_RUNS["bad_prior"].format(seed=seed),
               ["--sample_rule", "mixture", "--proportions", *p])
    plan.train(RESTRICTED, groups, seed, RESTRICTED_RUNS["aioli_restricted"].format(seed=seed), restricted)
    plan.train(RESTRICTED, groups, seed, RESTRICTED_RUNS["probes_only"].format(seed=seed),
               restricted + ["--eta", "0", "--aioli_base", "prior"])


# config.json entries that say where or how a run was written, not what it computed
NOT_COMPARED = {"output_dir", "run_name", "no_progress", "num_threads", "overwrite", "resume"}


def recorded_differences(task):
    """[(flag, recorded, asked)] for each flag of `task` that its finished run recorded with another value.
    Not a difference: a flag the run did not record (main.py gained it after the run), one that main.py
    resolves itself (parsed as None: precision, method, sample_rule), and NOT_COMPARED."""
    try:
        with open(os.path.join(task.run_dir, "config.json")) as fh:
            recorded = json.load(fh)
    except (OSError, ValueError):
        return [("config.json", "missing or unreadable", "a finished run's config")]
    asked = vars(MAIN_PARSER.parse_args(task.argv[2:]))
    moved = moved_from(recorded.get("output_dir"), os.path.dirname(task.run_dir))
    found = []
    for flag, value in asked.items():
        if flag in NOT_COMPARED or value is None or flag not in recorded:
            continue
        value = json.loads(json.dumps(value))  # as config.json stores it (tuples become lists)
        if moved(recorded[flag]) != value:
            found.append((flag, recorded[flag], value))
    if "--save_model" in task.argv and not os.path.isdir(os.path.join(task.run_dir, "model")):
        found.append(("save_model", "no model/", True))
    return found


def moved_from(old_dir, new_dir):
    """A function that rewrites the paths a run recorded under the benchmark folder it was made in (a fit's
    output that a final run reads) to the folder it is in now, so that a benchmark folder moved or copied
    whole is still reused. The two folders are the run's recorded and current parents, less their common
    trailing components (<setting>/...)."""
    while old_dir and os.path.basename(old_dir) and os.path.basename(old_dir) == os.path.basename(new_dir):
        old_dir, new_dir = os.path.dirname(old_dir), os.path.dirname(new_dir)

    def rewrite(value):
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        if old_dir and isinstance(value, str) and value.startswith(old_dir + os.sep):
            return new_dir + value[len(old_dir):]
        return value
    return rewrite


def refuse_stale_runs(tasks, out):
    """A run is reused because its results.json exists; one made with other flags (an earlier recipe, another
    --steps) would silently stand in for the run asked for. Refuse with one line instead."""
    stale = [(t, d) for t in tasks if t.run_dir and os.path.exists(t.done) and (d := recorded_differences(t))]
    if stale:
        task, diffs = stale[0]
        shown = "; ".join(f"--{f} {old} -> {new}" for f, old, new in diffs[:3])
        raise UsageError(f"--output_dir {out}: {len(stale)} finished run(s) were made with other flags than this "
                         f"command's (first: {os.path.relpath(task.run_dir, out)}: {shown}); use another "
                         "--output_dir, or delete those runs to run them again")


def prepare_run_dir(task):
    """True when the task finished earlier (reuse it). An interrupted run directory (no results.json)
    is deleted so that the run starts again from scratch."""
    if os.path.exists(task.done):
        return True
    if task.run_dir and os.path.exists(task.run_dir):
        shutil.rmtree(task.run_dir)
    return False


def execute(task):
    """Run one task; True on success. On failure print the last lines of its output and carry on."""
    if prepare_run_dir(task):
        log(f"reuse   {task.label}")
        return True
    os.makedirs(os.path.dirname(task.log), exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    log(f"start   {task.label}")
    started = time.time()
    with open(task.log, "w") as fh:
        rc = subprocess.run(task.argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    if rc == 0 and os.path.exists(task.done):
        log(f"done    {task.label} ({time.time() - started:.0f}s)")
        return True
    with open(task.log) as fh:
        tail = "".join(fh.readlines()[-8:])
    log(f"FAILED  {task.label} (exit {rc}, {time.time() - started:.0f}s; full output in {task.log}):\n{tail}")
    return False


def run_tasks(tasks, jobs, execute=execute):
    """Run tasks (in topological order) on `jobs` workers; whenever a worker is free it takes the first
    task, in plan order, whose deps have succeeded, so a seed's later stages (fits, final runs) come
    before the next seed's first runs. A task whose dep failed is not run. Returns {done path: bool}."""
    ok, pending, running = {}, list(tasks), {}
    with cf.ThreadPoolExecutor(jobs) as pool:
        while pending or running:
            for t in list(pending):
                if len(running) >= jobs:
                    break
                states = [ok.get(d.done) for d in t.deps]
                if False in states:  # one pass suffices: deps come before their dependents
                    ok[t.done] = False
                    pending.remove(t)
                    log(f"skip    {t.label} (an input failed)")
                elif all(states):
                    pending.remove(t)
                    running[pool.submit(execute, t)] = t
            if not running:
                break
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for f in finished:
                ok[running.pop(f).done] = f.result()
            log(f"progress {len(ok)}/{len(tasks)} jobs, {sum(1 for v in ok.values() if not v)} failed")
    return ok


# ---------------------------------------------------------------- reading results and the table maths

def read_result(run_dir):
    """{"ppl", "loss", "weights"} (average test perplexity and loss, the final mixture by group) of a
    complete run, else None."""
    try:
        with open(os.path.join(run_dir, "results.json")) as fh:
            r = json.load(fh)
    except (OSError, ValueError):
        return None
    ppl, loss = r.get("average_test_perplexity"), r.get("average_test_loss")
    if r.get("status") != "complete" or ppl is None or loss is None or not math.isfinite(ppl):
        return None
    return {"ppl": float(ppl), "loss": float(loss), "weights": r.get("final_weights") or {}}


def grid_winner(out, setting, seed):
    """(run dir, mixture) of the sweep winner named by grid_seed<S>.json, or (None, None)."""
    try:
        with open(os.path.join(out, setting, f"grid_seed{seed}.json")) as fh:
            best = json.load(fh)
    except (OSError, ValueError):
        return None, None
    if not best.get("runs"):
        return None, best.get("proportions")
    name = best["runs"][0]
    for run_dir in (os.path.join(out, setting, f"sweep_seed{seed}", name), os.path.join(out, setting, name)):
        if os.path.isdir(run_dir):
            return run_dir, best["proportions"]
    return None, best["proportions"]


def collect(out, settings, seeds, methods=METHODS):
    """values[setting][method][seed] = {"ppl", "loss"} for the runs of `methods` (table rows) that finished;
    mixtures[setting][seed] = the grid winner's mixture."""
    values, mixtures = {}, {}
    for s in settings:
        values[s], mixtures[s] = {m: {} for m in methods}, {}
        for seed in seeds:
            dirs = {m: os.path.join(out, s, name.format(seed=seed)) for m, name in RUNS.items() if m in methods}
            dirs["grid"], mix = grid_winner(out, s, seed)
            if mix is not None:
                mixtures[s][seed] = mix
            for m, run_dir in dirs.items():
                result = read_result(run_dir) if run_dir else None
                if result:
                    values[s][m][seed] = result
    return values, mixtures


def mean_sd(xs):
    """(mean, sample sd); sd is None below two values, both None for none."""
    xs = list(xs)
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def mean_mixture(mixtures):
    """The mean of several {group: weight} mixtures, by group ({} for none)."""
    mixtures = [m for m in mixtures if m]
    return {g: statistics.fmean(m[g] for m in mixtures) for g in mixtures[0]} if mixtures else {}


def paired(x, base):
    """Per-seed x - base over the seeds both have: (mean, standard error = sd/sqrt(n), n)."""
    diffs = [x[s] - base[s] for s in x if s in base]
    mean, sd = mean_sd(diffs)
    return mean, (sd / math.sqrt(len(diffs)) if sd is not None else None), len(diffs)


def extra_runs(method, k, n_sweep):
    """Runs a method needs beyond its final run (DoReMi's reference is the stratified run: not counted)."""
    # the sweep holds the k one-hot runs, which are also Skill-it's graph runs
    return {"stratified": 0, "grid": n_sweep, "DML": n_sweep + 1, "Skill-it": k, "DoReMi": 1, "DoGE": 1, "ODM": 0,
            "ODM final": 1, "ADO": 0, "ADO final": 1, "Aioli": 0}[method]


def summarize(values, sweep_sizes):
    """The table: per (method, setting) cell statistics of average test perplexity (and loss), per
    method the better/worse counts against stratified and the extra runs per setting."""
    methods = list(next(iter(values.values()))) if values else []
    cells, summary = {m: {} for m in methods}, {}
    for s, by_method in values.items():
        base = {seed: v["ppl"] for seed, v in by_method["stratified"].items()}
        base_mean, _ = mean_sd(base.values())
        for m in methods:
            ppl = {seed: v["ppl"] for seed, v in by_method[m].items()}
            mean, sd = mean_sd(ppl.values())
            loss_mean, loss_sd = mean_sd(v["loss"] for v in by_method[m].values())
            diff, se, n = paired(ppl, base)
            cells[m][s] = {"n": len(ppl), "mean_ppl": mean, "sd_ppl": sd, "mean_loss": loss_mean,
                           "sd_loss": loss_sd, "delta_ppl": None if mean is None or base_mean is None else mean - base_mean,
                           "paired_mean": diff, "paired_se": se, "paired_n": n}
    for m in methods:
        cs = cells[m].values()
        summary[m] = {
            "better": sum(1 for c in cs if c["paired_mean"] is not None and c["paired_mean"] < 0),
            # with one seed there is no standard error: never counted as worse
            "worse": sum(1 for c in cs if c["paired_se"] is not None and c["paired_mean"] > c["paired_se"]),
            "extra_runs": {s: extra_runs(m, len(SETTINGS[s]), sweep_sizes.get(s, 0)) for s in values}}
    return {"cells": cells, "summary": summary}


def recovery(bad, x, best):
    """Share of the gap between the bad prior and the best grid point that x closes (1 = all of it);
    None when the prior is not worse than the best grid point (nothing to recover)."""
    return (bad - x) / (bad - best) if bad - best > 0 else None


def collect_restricted(out, ref, seeds):
    """values[run][seed] = {"ppl", "loss"}: the restricted runs plus stratified and the best grid point of `ref`."""
    values = {m: {} for m in ["bad_prior", "best_grid", "stratified", "aioli_restricted", "probes_only"]}
    for seed in seeds:
        dirs = {m: os.path.join(out, RESTRICTED, name.format(seed=seed)) for m, name in RESTRICTED_RUNS.items()}
        dirs["stratified"] = os.path.join(out, ref, RUNS["stratified"].format(seed=seed))
        dirs["best_grid"] = grid_winner(out, ref, seed)[0]
        for m, run_dir in dirs.items():
            result = read_result(run_dir) if run_dir else None
            if result:
                values[m][seed] = result
    return values


def summarize_restricted(values):
    rows = {}
    for m, by_seed in values.items():
        mean, sd = mean_sd(v["ppl"] for v in by_seed.values())
        final = mean_mixture(v["weights"] for v in by_seed.values())
        rows[m] = {"n": len(by_seed), "mean_ppl": mean, "sd_ppl": sd, "final_weights": final, "recovery": {}}
        if m in ("aioli_restricted", "probes_only", "stratified"):
            for seed, v in by_seed.items():
                if seed in values["bad_prior"] and seed in values["best_grid"]:
                    rows[m]["recovery"][seed] = recovery(values["bad_prior"][seed]["ppl"], v["ppl"],
                                                         values["best_grid"][seed]["ppl"])
        rec = [r for r in rows[m]["recovery"].values() if r is not None]
        rows[m]["mean_recovery"] = statistics.fmean(rec) if rec else None
    return rows


# ---------------------------------------------------------------- rendering

def fmt(x, nd=1, sign=False):
    return "n/a" if x is None else f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def render(table, mixtures, restricted, header, n_seeds):
    cells, summary = table["cells"], table["summary"]
    settings = list(next(iter(cells.values())).keys()) if cells else []
    lines = list(header)
    if settings:  # (a run of the restricted setting alone has none)
        lines += render_settings(cells, summary, mixtures, settings, n_seeds)
    if restricted is not None:
        lines += render_restricted(restricted, n_seeds)
    return "\n".join(lines) + "\n"


def render_settings(cells, summary, mixtures, settings, n_seeds):
    lines = ["", "## Average test perplexity against stratified", "",
             "stratified: mean ± sd over seeds, perplexity / loss. Other methods: Δ of the mean vs "
             "stratified, and in brackets the paired difference (per seed method − stratified, "
             "mean ± standard error). Negative is better. `[n=..]`: seeds that finished, when fewer. "
             "better: settings with a negative paired mean; worse: settings where it exceeds one "
             "standard error (needs 2+ seeds). extra runs: per setting in column order; DoReMi's "
             "reference model is the stratified run (not counted); the grid cell is the sweep "
             "winner (lowest mean val loss among the sweep and stratified runs).", "",
             "| method | " + " | ".join(settings) + " | better | worse (>1 se) | extra runs |",
             "|---" * (len(settings) + 4) + "|"]
    for m in cells:
        row = []
        for s in settings:
            c = cells[m][s]
            if not c["n"]:
                row.append("–")
                continue
            if m == "stratified":
                text = f"{fmt(c['mean_ppl'])} ± {fmt(c['sd_ppl'])} / {fmt(c['mean_loss'], 3)} ± {fmt(c['sd_loss'], 3)}"
            else:
                text = (f"{fmt(c['delta_ppl'], sign=True)} ({fmt(c['paired_mean'], sign=True)} ± "
                        f"{fmt(c['paired_se'])})")
            row.append(text + (f" [n={c['n']}]" if c["n"] < n_seeds else ""))
        extra = list(summary[m]["extra_runs"].values())
        extra = str(extra[0]) if len(set(extra)) == 1 else ", ".join(map(str, extra))
        better, worse = ("–", "–") if m == "stratified" else (summary[m]["better"], summary[m]["worse"])
        lines.append(f"| {m} | " + " | ".join(row) + f" | {better} | {worse} | {extra} |")
    lines += ["", "## Mean average test perplexity / loss", "",
              "| method | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
    for m in cells:
        lines.append(f"| {m} | " + " | ".join(
            f"{fmt(cells[m][s]['mean_ppl'])} / {fmt(cells[m][s]['mean_loss'], 3)}" if cells[m][s]["n"] else "–"
            for s in settings) + " |")
    lines += ["", "## Grid winner's mixture (mean over seeds)", "", "| setting | mixture | distance from uniform (TV) |",
              "|---|---|---|"]
    for s in settings:
        mean = mean_mixture(mixtures.get(s, {}).values())
        if not mean:
            lines.append(f"| {s} | – | – |")
            continue
        tv = sum(abs(w - 1 / len(mean)) for w in mean.values()) / 2
        lines.append(f"| {s} | " + ", ".join(f"{g} {w:.2f}" for g, w in mean.items()) + f" | {tv:.2f} |")
    return lines


def render_restricted(restricted, n_seeds):
    rows, info = restricted["rows"], restricted["info"]
    lines = ["", f"## Restricted setting ({info})", "",
             "recovery = (bad_prior − X) / (bad_prior − best grid point), in average test perplexity, "
             "per seed; 1 = the whole gap closed, 0 = no better than the prior. final mixture: the mixture "
             "each run ended on, mean over seeds.", "",
             "| run | test ppl (mean ± sd) | recovery per seed | mean recovery | final mixture |",
             "|---|---|---|---|---|"]
    for m, r in rows.items():
        per_seed = ", ".join(f"seed {seed}: {fmt(x, 2)}" for seed, x in r["recovery"].items()) or "–"
        mean_rec = fmt(r["mean_recovery"], 2) if r["recovery"] else "–"
        ppl = f"{fmt(r['mean_ppl'])} ± {fmt(r['sd_ppl'])}" + (f" [n={r['n']}]" if r["n"] < n_seeds else "")
        final = ", ".join(f"{g} {w:.2f}" for g, w in r["final_weights"].items()) or "–"
        lines.append(f"| {m} | {ppl if r['n'] else '–'} | {per_seed} | {mean_rec} | {final} |")
    return lines


# ---------------------------------------------------------------- command line

def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_args(argv):
    p = OneLineArgumentParser(prog="bench_quality.py", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="40 steps, seed 0, one pair + restricted, small sweeps")
    p.add_argument("-j", "--jobs", type=positive_int, default=2, help="runs in parallel (default 2)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2 (--quick: 0)")
    p.add_argument("--steps", type=positive_int, default=None, help="steps per run (default 240, --quick 40)")
    p.add_argument("--settings", nargs="+", choices=[*SETTINGS, RESTRICTED], default=None, metavar="SETTING",
                   help=f"some of: {' '.join([*SETTINGS, RESTRICTED])} (default: "
                   f"{' '.join(SIZES['full']['settings'])}; --quick: "
                   f"{' '.join(SIZES['quick']['settings'])})")
    p.add_argument("--methods", nargs="+", choices=METHOD_CHOICES, default=None, metavar="METHOD",
                   help=f"some of: {' '.join(METHOD_CHOICES)} (default: the paper's {' '.join(PAPER_METHODS)}); "
                   "stratified and the grid sweep always run")
    p.add_argument("--output_dir", default=None,
                   help="default: output/bench_quality (--quick: output/bench_quality_quick)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="train and evaluate on this data instead of the demo corpus: anything main.py's "
                   "--train_data_dir takes (prepared shards, or raw SlimPajama-style .jsonl/.jsonl.zst files), holding "
                   "the groups of the chosen --settings")
    p.add_argument("--tokenizer", default=None,
                   help="with --data holding raw text: the tokenizer that prepares it (default: the demo's)")
    p.add_argument("--report_only", action="store_true",
                   help="write the table of the runs that have finished in --output_dir; run nothing")
    p.add_argument("--restricted_on", choices=list(SETTINGS), default="book_stackexchange",
                   help="groups (and reference runs) of the restricted setting")
    p.add_argument("--prior", type=float, nargs="+", default=[0.1, 0.9],
                   help="the restricted setting's bad prior, in --restricted_on group order (default 0.1 0.9)")
    args = p.parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]
    args.steps = args.steps or size["steps"]
    if args.steps < 8:
        p.error(f"--steps {args.steps}: at least 8 (a warmup, four evaluations and Aioli rounds)")
    args.seeds = args.seeds if args.seeds is not None else size["seeds"]
    args.settings = list(dict.fromkeys(args.settings or size["settings"]))
    args.methods = list(dict.fromkeys(args.methods or PAPER_METHODS))
    args.output_dir = args.output_dir or os.path.join("output", "bench_quality_quick" if args.quick else "bench_quality")
    k = len(SETTINGS[args.restricted_on])
    if len(args.prior) != k or min(args.prior) < 0 or sum(args.prior) <= 0:
        p.error(f"--prior: {k} non-negative weights (not all zero) for {' '.join(SETTINGS[args.restricted_on])}, "
                f"got {args.prior}")
    if args.tokenizer and not args.data:
        p.error("--tokenizer: only used with --data (the demo corpus has its own tokenizer)")
    if args.data and not os.path.exists(args.data):
        p.error(f"--data {args.data}: no such file or folder; give a folder main.py's --train_data_dir accepts")
    args.data_flags = []  # the demo corpus: main.py's defaults
    if args.data:
        data = os.path.abspath(args.data)
        args.data_flags = ["--train_data_dir", data, "--val_data_dir", data]
    if args.tokenizer:  # a local folder made absolute (runs start elsewhere); a Hub name as it is
        tokenizer = os.path.abspath(args.tokenizer) if os.path.exists(args.tokenizer) else args.tokenizer
        args.data_flags += ["--tokenizer", tokenizer]
    args.size = size
    return args


@exit_on_usage_error
def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = os.path.abspath(args.output_dir)
    plan = Plan(out, args.steps, args.size, args.data_flags)
    settings = [s for s in args.settings if s != RESTRICTED]
    for seed in args.seeds:  # seed-major: a first complete seed comes early
        for s in settings:
            plan_setting(plan, s, seed, args.methods)
        if RESTRICTED in args.settings:
            plan_restricted(plan, args.restricted_on, args.prior, seed)
    tasks = list(plan.tasks.values())
    refuse_stale_runs(tasks, out)
    log(f"{len(tasks)} jobs, {args.jobs} at a time, {args.steps} steps, seeds {args.seeds}, output {out}")
    if args.report_only:  # the table of what has finished, nothing run
        ok = {t.done: os.path.exists(t.done) for t in tasks}
    else:
        ok = run_tasks(tasks, args.jobs)

    values, mixtures = collect(out, settings, args.seeds, table_methods(args.methods))
    table = summarize(values, plan.sweep_sizes)
    restricted = None
    if RESTRICTED in args.settings:
        rows = summarize_restricted(collect_restricted(out, args.restricted_on, args.seeds))
        info = (f"groups of {args.restricted_on}, prior {' '.join(f'{w:g}' for w in args.prior)} for the first "
                f"{args.steps // 3} steps; references: {args.restricted_on}'s stratified and best grid runs")
        restricted = {"info": info, "rows": rows}
    corpus = f"`{args.data}`" if args.data else "the demo corpus"
    header = [f"# Table 2 at CPU scale: data-mixing methods on {corpus}", "",
              f"Command: `python {shlex.join([os.path.relpath(__file__, ROOT), *(sys.argv[1:] if argv is None else argv)])}`",
              "",
              f"Sizes: {args.steps} steps, seeds {' '.join(map(str, args.seeds))}, model tiny (from scratch), "
              f"context {flag_value(COMMON, '--context_length')}, batch {flag_value(COMMON, '--batch_size')}, lr "
              f"{flag_value(COMMON, '--lr')} linear_warmup_cosine to {flag_value(COMMON, '--end_lr')}, warmup "
              f"{max(1, args.steps // 10)}; "
              f"sweeps: k=2 grid step {args.size['grid']} (interior points), k>=3 cover "
              f"{args.size['cover_n']} points; metric: average test perplexity (mean over groups of "
              "exp(test loss), whole test split).",
              "", "Aioli: `" + " ".join(aioli_flags(2, args.steps)) + "` (k=2; for k groups see aioli_flags: "
              "one_hot_factor 0.625, 0.5, 2/k for k = 2, 3, more; --lp_rounds 4 up to k = 3, 2 above; "
              "--lp_eval_samples 8, 4, 3 for k = 2, 3, 5)"]
    text = render(table, mixtures, restricted, header, len(args.seeds))
    failed = [t.label for t in tasks if not ok.get(t.done)]
    if failed:
        text += f"\nFailed or skipped jobs ({len(failed)}): " + ", ".join(failed) + "\n"
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "table.md"), "w") as fh:
        fh.write(text)
    with open(os.path.join(out, "table.json"), "w") as fh:
        json.dump({"command": sys.argv if argv is None else ["bench_quality.py", *argv], "steps": args.steps,
                   "seeds": args.seeds, "settings": {s: SETTINGS[s] for s in settings}, "model": "tiny",
                   "data": os.path.abspath(args.data) if args.data else "demo",
                   "sweep_sizes": plan.sweep_sizes, **table, "grid_mixtures": mixtures,
                   "restricted": restricted, "failed": failed}, fh, indent=1)
    print(text)
    log(f"wrote {os.path.join(out, 'table.md')} and table.json; {len(failed)} job(s) failed or skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall-clock cost of Aioli against stratified sampling for the same number of steps, at the settings
of the quality benchmark (scripts/benchmarks/bench_quality.py: its model, batch, context, run length
and Aioli recipe), on the embedded demo corpus.

Aioli's overhead is its probe evaluations: k * lp_rounds + 1 per round, each on --lp_eval_samples
validation windows per group spread over the split; the probe steps themselves are ordinary training
steps. Each case is a fresh `main.py` subprocess with the same threads; the cases alternate over
`--repeat` rounds and the fastest of each is kept (a shared, noisy machine), and the figures are
ratios to stratified measured side by side in one run. Target: at most 1.10x.

    python scripts/benchmarks/bench_aioli.py [--settings book_stackexchange all] [--steps 240] [--repeat 2]
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def load_bench_quality():
    spec = importlib.util.spec_from_file_location("bench_quality", os.path.join(HERE, "bench_quality.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed_run(argv, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *argv, "--output_dir", out, "--no_progress",
                        "--num_threads", str(threads)], check=True, env=env, capture_output=True, cwd=ROOT)
        return time.perf_counter() - started


def main():
    bq = load_bench_quality()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", choices=list(bq.SETTINGS), default=["book_stackexchange", "all"])
    parser.add_argument("--steps", type=int, default=bq.SIZES["full"]["steps"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--lp_eval_samples", type=int, nargs="+", default=None, metavar="N",
                        help="also time the recipe with --lp_eval_samples N (one Aioli case per N, side by side)")
    opts = parser.parse_args()
    common = [*bq.COMMON, "--max_steps", str(opts.steps), "--warmup_steps", str(max(1, opts.steps // 10))]
    cases = {}
    for setting in opts.settings:
        groups = bq.SETTINGS[setting]
        base = [*common, "--slice_list", *groups]
        cases[(setting, "stratified")] = base
        cases[(setting, "aioli")] = base + bq.aioli_flags(len(groups), opts.steps)
        for n in opts.lp_eval_samples or ():
            cases[(setting, f"aioli@{n}")] = cases[(setting, "aioli")] + ["--lp_eval_samples", str(n)]
    best = {case: float("inf") for case in cases}
    for r in range(opts.repeat):
        for case, argv in cases.items():
            seconds = timed_run(argv, opts.threads)
            best[case] = min(best[case], seconds)
            print(f"repeat {r}: {case[0]:<26} {case[1]:<11} {seconds:7.1f} s", flush=True)
    print(f"\ndemo corpus, the quality benchmark's runs ({opts.steps} steps), {opts.threads} threads, "
          f"fastest of {opts.repeat}")
    for setting in opts.settings:
        print(f"Aioli on {setting}: {' '.join(bq.aioli_flags(len(bq.SETTINGS[setting]), opts.steps))}")
    print(f"{'setting':<26}{'case':<12}{'stratified s':>14}{'aioli s':>10}{'aioli / stratified':>20}")
    for (setting, case), a in best.items():
        if case != "stratified":
            s = best[(setting, "stratified")]
            print(f"{setting:<26}{case:<12}{s:>14.1f}{a:>10.1f}{a / s:>20.3f}")


if __name__ == "__main__":
    main()

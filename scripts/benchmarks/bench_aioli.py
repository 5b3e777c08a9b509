"""Wall-clock cost of Aioli against stratified sampling for the same number of steps.

Three `main.py` runs on the demo corpus, each in a fresh subprocess with the same model, batch,
steps and threads: stratified; Aioli with full probe evaluations (every validation window that the
periodic evaluation uses, as in the paper); Aioli with a bounded probe evaluation
(`--lp_eval_samples`). Aioli's overhead is its probe evaluations (k * lp_rounds + 1 per round):
the probe steps themselves are ordinary training steps. Runs alternate over `--repeat` rounds and
the fastest of each is kept (a shared, noisy machine); the figures are ratios to stratified.

    python scripts/benchmarks/bench_aioli.py [--steps 200] [--eval_windows 64] [--lp_eval_samples 8]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed_run(argv, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *argv, "--output_dir", out, "--no_progress",
                        "--num_threads", str(threads)], check=True, env=env, capture_output=True, cwd=ROOT)
        return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--update_steps", type=int, default=50)
    parser.add_argument("--eval_windows", type=int, default=64, help="val windows per group (periodic evaluation)")
    parser.add_argument("--lp_eval_samples", type=int, default=8, help="bounded probe evaluation")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    opts = parser.parse_args()
    common = ["--max_steps", str(opts.steps), "--max_eval_samples", str(opts.eval_windows), "--num_ckpts", "4"]
    aioli = ["--aioli", "--update_steps", str(opts.update_steps), "--lp_rounds", "1", "--lp_steps", "4",
             "--one_hot_factor", "0.6", "--eta", "0.5", "--aioli_normalize_A"]
    cases = {"stratified": common,
             "aioli, full probe eval": common + aioli + ["--lp_eval_samples", str(opts.eval_windows)],
             f"aioli, {opts.lp_eval_samples} windows/probe eval": common + aioli + ["--lp_eval_samples",
                                                                                   str(opts.lp_eval_samples)]}
    best = {name: float("inf") for name in cases}
    for r in range(opts.repeat):
        for name, argv in cases.items():
            seconds = timed_run(argv, opts.threads)
            best[name] = min(best[name], seconds)
            print(f"repeat {r}: {name:<34} {seconds:7.1f} s", flush=True)
    base = best["stratified"]
    print(f"\ndemo corpus (5 groups), tiny model, {opts.steps} steps, rounds of {opts.update_steps}, "
          f"{opts.eval_windows} val windows/group, {opts.threads} threads")
    print(f"{'run':<36}{'seconds':>9}{'x stratified':>14}")
    for name, seconds in best.items():
        print(f"{name:<36}{seconds:>9.1f}{seconds / base:>14.2f}")


if __name__ == "__main__":
    main()

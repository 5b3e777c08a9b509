"""Training throughput of a real `main.py` run against a bare PyTorch loop of the same model.

Both run in fresh subprocesses with the same model config, batch, context length, thread count and
data (the demo shards): the bare loop does only forward, backward, clip and AdamW step on batches
made before timing. main.py's figure is the median tokens/s of its metrics.jsonl windows after the
first (which holds start-up and the step-0 evaluation); the bare loop is timed over the same steps.
Runs alternate (main, bare, main, bare, ...) and the best of each is kept: this machine is shared
and noisy, and the ratio is what matters. Target: main.py >= 0.95 x bare.

    python scripts/benchmarks/bench_loop.py [--model mini] [--steps 80] [--repeat 2] [--threads 2]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BARE = r"""
import json, sys, time
sys.path.insert(0, {root!r})
import numpy as np, torch
torch.set_num_threads({threads})
from trainer.data_setup import build_data
from trainer.config import resolve
from trainer.models import build_model
from trainer.optim import build_optimizer
cfg = resolve({argv!r})
data = build_data(cfg)
sampler = data.make_sampler(np.full(len(data.groups), 1.0 / len(data.groups)))
batches = [torch.from_numpy(sampler.next_batch()["input_ids"]) for _ in range({steps})]
torch.manual_seed(0)
model = build_model(cfg.model.model_name, 0, data_vocab_size=data.vocab_size, context_length=cfg.data.context_length,
                    attn_implementation="sdpa", dtype=torch.float32)
opt = build_optimizer(model, 1e-3)
model.train()
times = []
for x in batches:
    t = time.perf_counter()
    loss = model(input_ids=x, labels=x).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def main_run(argv, out_dir, log_every):
    env = dict(os.environ, OMP_NUM_THREADS=str(argv[argv.index("--num_threads") + 1]))
    subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *argv, "--output_dir", out_dir,
                    "--log_every", str(log_every), "--num_ckpts", "1", "--checkpoint_every", "100000",
                    "--no_progress"], check=True, env=env, capture_output=True, cwd=ROOT)
    (run,) = os.listdir(out_dir)
    with open(os.path.join(out_dir, run, "metrics.jsonl")) as fh:
        lines = [json.loads(x) for x in fh]
    rates = [x["tokens_per_s"] for x in lines if "tokens_per_s" in x][1:]
    return statistics.median(rates)


def bare_run(argv, steps, threads, log_every, tokens_per_step):
    code = BARE.format(root=ROOT, threads=threads, argv=argv, steps=steps)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True, text=True,
                         cwd=ROOT).stdout
    return median_window_rate(out, log_every, tokens_per_step)


def median_window_rate(stdout: str, log_every: int, tokens_per_step: int) -> float:
    """Median tokens/s over windows of `log_every` steps of a bare loop's step times (its last stdout line),
    after the first window: the same warm-up cut as main.py's metrics."""
    times = json.loads(stdout.strip().splitlines()[-1])[log_every:]
    windows = [sum(times[i:i + log_every]) for i in range(0, len(times) - log_every + 1, log_every)]
    return statistics.median(tokens_per_step * log_every / w for w in windows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mini")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--context_length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--log_every", type=int, default=10)
    opts = parser.parse_args()
    argv = ["--model", opts.model, "--checkpoint", "0", "--max_steps", str(opts.steps), "--batch_size",
            str(opts.batch_size), "--context_length", str(opts.context_length), "--num_threads", str(opts.threads),
            "--max_eval_samples", "4", "--lr", "1e-3", "--warmup_steps", "5"]
    tokens_per_step = opts.batch_size * opts.context_length
    best_main, best_bare = 0.0, 0.0
    started = time.time()
    for r in range(opts.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            m = main_run(argv, tmp, opts.log_every)
        b = bare_run(argv, opts.steps, opts.threads, opts.log_every, tokens_per_step)
        print(f"repeat {r}: main.py {m:,.0f} tok/s, bare loop {b:,.0f} tok/s, ratio {m / b:.3f}", flush=True)
        best_main, best_bare = max(best_main, m), max(best_bare, b)
    ratio = best_main / best_bare
    print(f"\nmodel {opts.model}, batch {opts.batch_size} x {opts.context_length} tokens, {opts.threads} threads, "
          f"{opts.steps} steps, best of {opts.repeat} ({time.time() - started:.0f} s)")
    print(f"{'figure':<28}{'value':>14}{'target':>10}")
    print(f"{'main.py tokens/s':<28}{best_main:>14,.0f}")
    print(f"{'bare loop tokens/s':<28}{best_bare:>14,.0f}")
    print(f"{'ratio main.py / bare':<28}{ratio:>14.3f}{'>= 0.95':>10}  {'pass' if ratio >= 0.95 else 'FAIL'}")


if __name__ == "__main__":
    main()

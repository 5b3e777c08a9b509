"""GPU throughput: `main.py` against a bare PyTorch loop of the same model on the same device, and the
DDP path when more than one GPU is present. Pythia-160M from scratch, context 2048, the paper's batch of
8 per device, bf16 autocast with fp32 master weights, FlashAttention-2 when importable (else SDPA).

    python scripts/benchmarks/bench_gpu.py [--steps 60] [--model EleutherAI/pythia-160m]
        [--context_length 2048] [--batch_size 8] [--nproc N] [--peak_tflops T] [--compile]
    python scripts/benchmarks/bench_gpu.py --device cpu --model tiny --context_length 128 --steps 20 \
        --precision fp32          # a smoke run of the script itself on a CPU

Both sides train on the demo corpus (its tokenizer fits every Pythia vocabulary), in fresh
subprocesses. main.py's figure is the median tokens/s of its metrics.jsonl windows after the first
(start-up and the step-0 evaluation); the bare loop does forward, backward, clip and fused AdamW on
batches already on the device, timed over the same windows with the device synchronised. MFU = tokens/s
x training FLOPs per token (trainer.models.flops_per_token) / the device's peak (a table of known GPUs,
or --peak_tflops). Targets on an H100/H200-class GPU: main.py >= 0.95 x the bare loop, MFU >= 40%.
Under 5 minutes on one GPU at the defaults.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench_loop import median_window_rate  # noqa: E402  (this folder is on sys.path when run as a script)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKENIZER = os.path.join(ROOT, "data", "demo", "tokenizer.json")

BARE = r"""
import contextlib, json, sys, time
sys.path.insert(0, {root!r})
import numpy as np, torch
from trainer.build import numerics
from trainer.config import pick_device, resolve
from trainer.data_setup import build_data
from trainer.evaluation import token_losses
from trainer.models import build_model, choose_attention
from trainer.optim import build_optimizer
cfg = resolve({argv!r})
device = pick_device(cfg.train.device)
if device.type == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = True
dtype, autocast = numerics(cfg.model.precision, device)
data = build_data(cfg)
sampler = data.make_sampler(np.full(len(data.groups), 1.0 / len(data.groups)))
batches = [torch.from_numpy(sampler.next_batch()["input_ids"]).to(device) for _ in range({steps})]
torch.manual_seed(0)
model = build_model(cfg.model.model_name, 0, data_vocab_size=data.vocab_size, context_length=cfg.data.context_length,
                    attn_implementation=choose_attention(cfg.model.use_flash_attention, device), dtype=dtype).to(device)
opt = build_optimizer(model, 1e-3)
model.train()
step_model = torch.compile(model) if cfg.model.compile else model
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
times = []
for x in batches:
    sync()
    t = time.perf_counter()
    losses, mask = token_losses(step_model, {{"input_ids": x, "labels": x}}, autocast)  # main.py's loss
    loss = (losses * mask).sum() / mask.sum()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    sync()
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def main_argv(opts, steps, batch_size):
    argv = ["--model", opts.model, "--checkpoint", "0", "--tokenizer", TOKENIZER, "--context_length",
            str(opts.context_length), "--batch_size", str(batch_size), "--max_steps", str(steps),
            "--max_eval_samples", "2", "--max_test_samples", "2", "--lr", "5e-4", "--warmup_steps", "10",
            "--precision", opts.precision, "--device", opts.device, "--slice_list", "arxiv", "book"]
    if opts.flash:
        argv.append("--use_flash_attention")
    if opts.compile:
        argv.append("--compile")
    if opts.peak_tflops:
        argv += ["--peak_tflops", str(opts.peak_tflops)]
    return argv


def run_main(argv, log_every, nproc=1):
    """(median tokens/s, median MFU or None) of a main.py run (under torchrun when nproc > 1)."""
    launcher = [sys.executable] if nproc == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    "--nproc_per_node", str(nproc)]
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([*launcher, os.path.join(ROOT, "main.py"), *argv, "--output_dir", out, "--run_name", "r",
                        "--log_every", str(log_every), "--num_ckpts", "1", "--checkpoint_every", "1000000",
                        "--no_progress"], check=True, capture_output=True, cwd=ROOT)
        with open(os.path.join(out, "r", "metrics.jsonl")) as fh:
            lines = [json.loads(x) for x in fh if '"tokens_per_s"' in x][1:]
    rate = statistics.median(x["tokens_per_s"] for x in lines)
    mfu = statistics.median(x["mfu"] for x in lines) if lines and "mfu" in lines[0] else None
    return rate, mfu


def run_bare(argv, steps, log_every, tokens_per_step):
    out = subprocess.run([sys.executable, "-c", BARE.format(root=ROOT, argv=argv + ["--max_steps", str(steps)],
                                                            steps=steps)],
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return median_window_rate(out, log_every, tokens_per_step)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="EleutherAI/pythia-160m")
    parser.add_argument("--context_length", type=int, default=2048)
    parser.add_argument("--batch_size", type=int, default=8, help="per device")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log_every", type=int, default=10)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", default="bf16-autocast", choices=("fp32", "bf16-autocast", "bf16-pure"))
    parser.add_argument("--no_flash", dest="flash", action="store_false", help="SDPA instead of FlashAttention-2")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the training step on both sides (main.py --compile)")
    parser.add_argument("--nproc", type=int, default=None, help="ranks of the DDP figure (default: every GPU)")
    parser.add_argument("--peak_tflops", type=float, default=None)
    opts = parser.parse_args()
    import torch

    from trainer.models import bundled_config, flops_per_token, peak_tflops

    device = torch.device(opts.device)
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    nproc = opts.nproc if opts.nproc is not None else gpus
    started = time.time()
    argv = main_argv(opts, opts.steps, opts.batch_size)
    tokens_per_step = opts.batch_size * opts.context_length
    main_rate, main_mfu = run_main(argv, opts.log_every)
    bare_rate = run_bare(argv, opts.steps, opts.log_every, tokens_per_step)
    config = bundled_config(opts.model, 4096, opts.context_length)
    per_token = flops_per_token(config, opts.context_length)
    peak = peak_tflops(device, opts.peak_tflops)
    bare_mfu = bare_rate * per_token / (peak * 1e12) if peak else None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{opts.model} from scratch, {opts.batch_size} x {opts.context_length} tokens per device, {opts.precision}"
          f"{', FlashAttention-2 requested' if opts.flash else ''}{', compiled' if opts.compile else ''}, "
          f"on {name} (peak {f'{peak:.3g} TFLOP/s' if peak else 'unknown'}); {per_token / 1e9:.2f} GFLOP per token")
    fmt = lambda m: "n/a" if m is None else f"{100 * m:.1f}%"  # noqa: E731
    print(f"{'path':<34}{'tokens/s':>12}{'MFU':>8}")
    print(f"{'main.py (1 process)':<34}{main_rate:>12,.0f}{fmt(main_mfu):>8}")
    print(f"{'bare loop':<34}{bare_rate:>12,.0f}{fmt(bare_mfu):>8}")
    ratio = main_rate / bare_rate
    print(f"{'ratio main.py / bare':<34}{ratio:>12.3f}   target >= 0.95: {'pass' if ratio >= 0.95 else 'FAIL'}")
    if main_mfu is not None:
        print(f"{'MFU of main.py':<34}{fmt(main_mfu):>12}   target >= 40%: {'pass' if main_mfu >= 0.40 else 'FAIL'}")
    if nproc > 1:
        rate, mfu = run_main(main_argv(opts, opts.steps, opts.batch_size * nproc), opts.log_every, nproc)
        print(f"{f'main.py under torchrun x{nproc}':<34}{rate:>12,.0f}{fmt(mfu):>8}   scaling "
              f"{rate / main_rate / nproc:.2f} of linear")
    print(f"({time.time() - started:.0f} s)")


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    main()

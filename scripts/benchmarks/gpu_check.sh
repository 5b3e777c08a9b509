#!/usr/bin/env bash
# The GPU path in one go, for a machine with one CUDA GPU, within a wall-clock budget (BUDGET_S, default
# 570 s): what the machine has; the training throughput of main.py against a bare loop (bench_gpu.py:
# Pythia-160M from scratch, context 2048, batch 8, bf16 autocast, FlashAttention-2 when installed, else
# PyTorch SDPA), eager and with --compile; Aioli's wall time against stratified at the paper's recipe on
# the same model; then, with QUALITY=1, the quality benchmark (bench_quality.py, tiny model, every method)
# on the GPU with -j JOBS workers for whatever time is left (all 303 jobs took 317 s on an H200 with 16
# cores). Figures and logs go to $OUT (default /tmp/gpu_check); the benchmark's light files (no weights)
# to $OUT/bench_quality.tgz, so an interrupted benchmark can be reported or continued elsewhere.
#
#     OUT=/tmp/gpu_check BUDGET_S=570 [QUALITY=1 JOBS=16] bash scripts/benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
JOBS=${JOBS:-16}
BENCH_DIR=${BENCH_DIR:-/tmp/bench_quality_gpu}
export PYTHONUNBUFFERED=1 AIOLI_CACHE_DIR=${AIOLI_CACHE_DIR:-/tmp/aioli_cache}
DEADLINE=$(( $(date +%s) + ${BUDGET_S:-570} ))
left() { echo $(( DEADLINE - $(date +%s) )); }

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
'bf16', torch.cuda.is_bf16_supported(), torch.cuda.get_device_name()); print('transformers', transformers.__version__)"
    "$PY" -c "import flash_attn; print('flash_attn', flash_attn.__version__)" 2>/dev/null \
        || echo "flash_attn: not installed (--use_flash_attention falls back to SDPA, whose flash kernel serves bf16)"
    nproc
} 2>&1 | tee "$OUT/env.txt"

echo "== throughput: main.py against a bare loop ($(left) s left)"
timeout 170 "$PY" scripts/benchmarks/bench_gpu.py --steps 50 2>&1 | tee "$OUT/bench_gpu.txt"
echo "== the same, compiled ($(left) s left)"
timeout 240 "$PY" scripts/benchmarks/bench_gpu.py --steps 50 --compile 2>&1 | tee "$OUT/bench_gpu_compiled.txt"

echo "== Aioli against stratified, Pythia-160M, the paper's k=2 recipe, 200 steps ($(left) s left)"
RUNS=$(mktemp -d)
PAPER=(--model EleutherAI/pythia-160m --checkpoint 0 --tokenizer data/demo/tokenizer.json
       --slice_list arxiv stackexchange --context_length 2048 --batch_size 8 --max_steps 200 --lr 5e-4
       --lr_scheduler linear_warmup_cosine --warmup_steps 20 --use_flash_attention --max_eval_samples 16
       --num_ckpts 1 --no_progress --output_dir "$RUNS")
AIOLI=(--aioli --lp_rounds 4 --lp_steps 4 --eta 0.2 --ema 0.1 --update_steps 100 --one_hot_factor 0.625
       --aioli_normalize_A --lp_eval_samples 16)
for run in stratified aioli; do
    extra=()
    [ "$run" = aioli ] && extra=("${AIOLI[@]}")
    start=$(date +%s%N)
    timeout 150 "$PY" main.py "${PAPER[@]}" "${extra[@]}" --run_name "$run" > "$OUT/paper_$run.log" 2>&1
    echo "$run rc=$? wall_ms=$(( ($(date +%s%N) - start) / 1000000 ))" | tee -a "$OUT/paper_runs.txt"
done
"$PY" - "$RUNS" <<'EOF' 2>&1 | tee -a "$OUT/paper_runs.txt"
import json, os, sys
for run in ("stratified", "aioli"):
    path = os.path.join(sys.argv[1], run, "results.json")
    if os.path.exists(path):
        with open(path) as fh:
            res = json.load(fh)
        print(run, "step", res["step"], "avg test loss %.4f" % res["average_test_loss"],
              "avg test ppl %.2f" % res["average_test_perplexity"], "final weights", res["final_weights"])
EOF
tail -n 3 "$RUNS"/aioli/metrics.jsonl > "$OUT/paper_aioli_metrics_tail.jsonl" 2>/dev/null

[ "${QUALITY:-0}" = 1 ] || exit 0
echo "== quality benchmark on the GPU, -j $JOBS ($(left) s left)"
timeout $(( $(left) - 25 )) "$PY" scripts/benchmarks/bench_quality.py -j "$JOBS" --output_dir "$BENCH_DIR" \
    > "$OUT/bench_quality.log" 2>&1
echo "bench_quality rc=$?"
tail -n 5 "$OUT/bench_quality.log"
"$PY" scripts/benchmarks/bench_quality.py --report_only --output_dir "$BENCH_DIR" > "$OUT/bench_quality_table.md" 2>&1
tar czf "$OUT/bench_quality.tgz" -C "$BENCH_DIR" --exclude='*.safetensors' --exclude='*.pt' --exclude='*.bin' \
    --exclude='*.distcp' --exclude='*.npy' .
ls -la "$OUT"

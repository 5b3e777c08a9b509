#!/usr/bin/env bash
# Aioli static ablation: full (arxiv book c4 cc github stackexchange wikipedia; k=7), pythia-160m from scratch, one run per seed.
# Usage: SLIMPAJAMA_DIR=/path/to/shards-or-raw-slimpajama bash scripts/full/aioli/<this file> [extra main.py flags]
# Extra flags are passed through to every run (e.g. --output_dir, --device); SEEDS overrides the seeds.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MAIN="$HERE/../../../main.py"
DATA="${SLIMPAJAMA_DIR:?set SLIMPAJAMA_DIR to prepared shards or raw SlimPajama}"

# "Aioli static": one LearnParams at the start, then that mixture for the whole run. The paper got
# this with --update_steps 40000; here --aioli_static says it directly (--update_steps is not needed).
COMMON=(
  --task_name slimpj --model EleutherAI/pythia-160m --checkpoint 0 --use_flash_attention
  --train_data_dir "$DATA" --val_data_dir "$DATA"
  --batch_size 8 --context_length 2048 --lr 0.0005 --lr_scheduler linear_warmup_cosine
  --warmup_steps 500 --max_steps 40000 --num_ckpts 20
  --eval_batch_size 16 --save_model
)

# The paper ran seeds 0-2 for the 40k-step full setting.
for SEED in ${SEEDS:-0 1 2}; do
  python "$MAIN" "${COMMON[@]}" --slice_list arxiv book c4 cc github stackexchange wikipedia \
    --aioli --aioli_normalize_A --lp_rounds 2 --lp_steps 10 --eta 1 --one_hot_factor 0.75 --aioli_static \
    --selection_seed "$SEED" --custom_name aioli_static "$@"
done

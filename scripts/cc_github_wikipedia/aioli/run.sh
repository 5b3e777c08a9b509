#!/usr/bin/env bash
# Aioli, unrestricted: cc_github_wikipedia (cc github wikipedia; k=3), pythia-160m from scratch, one run per seed.
# Usage: SLIMPAJAMA_DIR=/path/to/shards-or-raw-slimpajama bash scripts/cc_github_wikipedia/aioli/<this file> [extra main.py flags]
# Extra flags are passed through to every run (e.g. --output_dir, --device); SEEDS overrides the seeds.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MAIN="$HERE/../../../main.py"
DATA="${SLIMPAJAMA_DIR:?set SLIMPAJAMA_DIR to prepared shards or raw SlimPajama}"

# The paper's k=3 row (arxiv/book/stackexchange script); cc/github/wikipedia has no paper
# script and reuses the k=3 row unchanged (our choice).
COMMON=(
  --task_name slimpj --model EleutherAI/pythia-160m --checkpoint 0 --use_flash_attention
  --train_data_dir "$DATA" --val_data_dir "$DATA"
  --batch_size 8 --context_length 2048 --lr 0.0005 --lr_scheduler linear_warmup_cosine
  --warmup_steps 500 --max_steps 5000 --num_ckpts 20
)

for SEED in ${SEEDS:-0 1 2 3 4}; do
  python "$MAIN" "${COMMON[@]}" --slice_list cc github wikipedia \
    --aioli --aioli_normalize_A --lp_rounds 4 --lp_steps 6 --eta 0.1 --ema 0.5 --update_steps 250 --one_hot_factor 0.5 \
    --selection_seed "$SEED" "$@"
done

# Sourced by the scripts in this folder: the paper's instruction-tuning settings:
# pretrained Pythia-160m (no --checkpoint), 1000 steps, lr 1e-5 with a linear schedule
# and 100 warmup steps, batch 8, context 2048, 10 evaluations, no flash attention.
# Environment:
#   NI_DIR      (required) the natural-instructions checkout or its tasks/ folder
#   TASKS       tasks to mix (default: the paper's 9). Only 5 are available offline here:
#               TASKS="abductivenli mathqa piqa semeval sst2"
#   MODEL       default EleutherAI/pythia-160m (must be in the local HF cache, or a local directory)
#   OUTPUT_DIR  default ./output/instruction; set it here, not with --output_dir in the extra flags,
#               since some scripts find their own earlier runs in it
#   SEEDS       seeds of the method scripts (default: 0 1 2)
# Extra flags given to a script are appended to every main.py call (e.g. --device cuda:1).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MAIN="$ROOT/main.py"
NI_DIR="${NI_DIR:?set NI_DIR to the natural-instructions checkout (or its tasks/ folder)}"
read -r -a TASK_LIST <<< "${TASKS:-abductivenli boolq hellaswag mathqa piqa semeval squad sst2 xsum}"
K="${#TASK_LIST[@]}"
OUT="${OUTPUT_DIR:-./output/instruction}"
COMMON=(
  --task_name instruction --train_data_dir "$NI_DIR" --slice_list "${TASK_LIST[@]}"
  --model "${MODEL:-EleutherAI/pythia-160m}"
  --max_steps 1000 --batch_size 8 --context_length 2048 --lr 1e-5 --lr_scheduler linear
  --warmup_steps 100 --num_ckpts 10 --output_dir "$OUT"
)

# A run whose results.json exists is skipped, so an interrupted sweep can simply be started again.
done_run() { [[ -f "$OUT/$1/results.json" ]]; }

# Mixtures of a seeded Dirichlet cover over the K tasks, one comma-separated line each.
cover_file() {  # cover_file N SEED -> path of the .txt (created once)
  local dir="$OUT/covers" base="cover_k${K}_n$1_seed$2"
  mkdir -p "$dir"
  [[ -f "$dir/$base.txt" ]] || python "$ROOT/mixing_law_fitting.py" cover --k "$K" --n "$1" --seed "$2" \
    --output "$dir/$base.json" >&2
  echo "$dir/$base.txt"
}

load_cover() {  # MIXES <- the cover of N (default 50) mixtures with seed COVER_SEED (default 0)
  mapfile -t MIXES < "$(cover_file "${N:-50}" "${COVER_SEED:-0}")"
}

#!/usr/bin/env bash
# Static sweep (grid search / mixing-law data): N mixtures of a seeded Dirichlet cover over the tasks
# (the paper: 50 mixtures over 9 tasks, cover seed 0), one 1000-step run each.
# Usage: NI_DIR=/path/to/natural-instructions bash scripts/instruction/sweep.sh [extra main.py flags]
# Environment: N (default 50), COVER_SEED (default 0), SEED (training seed, default 0); see common.sh.
# Afterwards: python mixing_law_fitting.py best / linreg --run_dir "$OUTPUT_DIR/sweep" ...
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NI_DIR="${NI_DIR:?set NI_DIR to the natural-instructions checkout (or its tasks/ folder)}"
source "$HERE/common.sh"  # COMMON flags, MAIN (main.py relative to this folder), TASK_LIST, K, OUT
N="${N:-50}"
COVER="$(cover_file "$N" "${COVER_SEED:-0}")"
SEED="${SEED:-0}"

mapfile -t MIXES < "$COVER"
for ((i = 0; i < ${#MIXES[@]}; i++)); do
  IFS=, read -r -a P <<< "${MIXES[$i]}"
  NAME="sweep-$i-seed$SEED"
  done_run "sweep/$NAME" && continue
  python "$MAIN" "${COMMON[@]}" --output_dir "$OUT/sweep" --run_name "$NAME" \
    --sample_rule mixture --proportions "${P[@]}" --selection_seed "$SEED" "$@"
done

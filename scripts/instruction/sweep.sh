#!/usr/bin/env bash
# Static sweep (grid search / mixing-law data): N mixtures of a seeded Dirichlet cover over the tasks
# (the paper: 50 mixtures over 9 tasks, cover seed 0), one 1000-step run each.
# Usage: NI_DIR=/path/to/natural-instructions bash scripts/instruction/sweep.sh [extra main.py flags]
# Environment: N (default 50), COVER_SEED (default 0), SEED (training seed, default 0); see common.sh.
# Afterwards: python mixing_law_fitting.py best / linreg --run_dir "$OUTPUT_DIR/sweep" ...
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/common.sh"  # COMMON flags, MAIN (main.py relative to this folder), TASK_LIST, K, OUT
load_cover  # MIXES: the N-mixture cover (N, COVER_SEED)
SEED="${SEED:-0}"

for ((i = 0; i < ${#MIXES[@]}; i++)); do
  IFS=, read -r -a P <<< "${MIXES[$i]}"
  NAME="sweep-$i-seed$SEED"
  done_run "sweep/$NAME" && continue
  python "$MAIN" "${COMMON[@]}" --output_dir "$OUT/sweep" --run_name "$NAME" \
    --sample_rule mixture --proportions "${P[@]}" --selection_seed "$SEED" "$@"
done

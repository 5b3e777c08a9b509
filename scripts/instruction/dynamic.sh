#!/usr/bin/env bash
# Dynamic mixing-law sweep (paper section 6.4 "sweep/dynamic"): parents train on mixture j and stop
# at step 500 (--break_steps, full state saved); each child resumes a parent with another mixture i
# for 100 more steps. The paper: 10 parents x 50 child mixtures from the 50-mixture cover, seed 0.
# Usage: NI_DIR=/path/to/natural-instructions bash scripts/instruction/dynamic.sh [extra main.py flags]
# Environment: PARENTS (default 10), CHILDREN (default 50), N (cover size, default 50), COVER_SEED
# (default 0), SEED (default 0), BREAK_STEPS (500), REMAINING_STEPS (100); see common.sh.
# Afterwards: python mixing_law_fitting.py dynamic --run_dir "$OUTPUT_DIR/dynamic" ...
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/common.sh"  # COMMON flags, MAIN (main.py relative to this folder), TASK_LIST, K, OUT
load_cover  # MIXES: the N-mixture cover (N, COVER_SEED)
SEED="${SEED:-0}"
PARENTS="${PARENTS:-10}"
CHILDREN="${CHILDREN:-50}"
DYN="$OUT/dynamic"
BREAK_STEPS="${BREAK_STEPS:-500}"        # the paper's parent break step
REMAINING_STEPS="${REMAINING_STEPS:-100}"  # the paper's child length

for ((j = 0; j < PARENTS && j < ${#MIXES[@]}; j++)); do
  IFS=, read -r -a PJ <<< "${MIXES[$j]}"
  PARENT="parent-$j-seed$SEED"
  if ! done_run "dynamic/$PARENT"; then
    python "$MAIN" "${COMMON[@]}" --output_dir "$DYN" --run_name "$PARENT" \
      --sample_rule mixture --proportions "${PJ[@]}" --break_steps "$BREAK_STEPS" --selection_seed "$SEED" "$@"
  fi
  for ((i = 0; i < CHILDREN && i < ${#MIXES[@]}; i++)); do
    IFS=, read -r -a PI <<< "${MIXES[$i]}"
    CHILD="$PARENT-child-$i"
    done_run "dynamic/$CHILD" && continue
    python "$MAIN" "${COMMON[@]}" --output_dir "$DYN" --run_name "$CHILD" \
      --sample_rule mixture --proportions "${PI[@]}" \
      --resume_model_path "$DYN/$PARENT" --remaining_steps "$REMAINING_STEPS" --selection_seed "$SEED" "$@"
  done
done

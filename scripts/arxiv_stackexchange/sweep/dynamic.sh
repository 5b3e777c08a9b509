#!/usr/bin/env bash
# Dynamic mixing-law sweep (parents and children): arxiv_stackexchange (arxiv stackexchange; k=2), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/arxiv_stackexchange/sweep/dynamic.sh [extra main.py flags]
# Parents: one static run per mixture, stopped at BREAK_STEPS (default 2000; the paper's child
# script pointed at break 4000 while its parents broke at 2000: fixed) with their full state.
# Children: from every parent, one run per mixture for REMAINING_STEPS (default 100) more steps
# (--resume_model_path). Mixtures: the 0.1 grid (11 parents x 11 children).
# Seeds: SEEDS, default 0 only (one seed is ~7 full runs of compute). Set BREAK_STEPS and
# REMAINING_STEPS here, not as extra flags (the children would inherit a --break_steps).
# Outputs: $OUTPUT_DIR/arxiv_stackexchange/dynamic_seed<S>/parent<NN> and parent<NN>_child<MM>; fit them with
# mixing_law_fitting.py dynamic --run_dir $OUTPUT_DIR/arxiv_stackexchange/dynamic_seed<S>.
# Environment and resumption: scripts/lib/common.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$HERE/../../lib/common.sh"
setting arxiv_stackexchange

BREAK="${BREAK_STEPS:-2000}"
REMAINING="${REMAINING_STEPS:-100}"
for SEED in ${SEEDS:-0}; do
  DIR="$OUT/dynamic_seed$SEED"
  mixtures "$SEED" "$DIR/mixtures.txt"
  mapfile -t MIX < <(grep -v '^$' "$DIR/mixtures.txt")
  for I in "${!MIX[@]}"; do
    read -r -a P <<< "${MIX[$I]//,/ }"
    PARENT="$(printf 'parent%02d' $((I + 1)))"
    train "$DIR" "$PARENT" "${COMMON[@]}" --sample_rule mixture --proportions "${P[@]}" --break_steps "$BREAK" \
      --num_ckpts 20 --selection_seed "$SEED" "$@"
    for J in "${!MIX[@]}"; do
      read -r -a C <<< "${MIX[$J]//,/ }"
      train "$DIR" "${PARENT}_child$(printf '%02d' $((J + 1)))" "${COMMON[@]}" --sample_rule mixture --proportions "${C[@]}" \
        --resume_model_path "$DIR/$PARENT" --remaining_steps "$REMAINING" --num_ckpts 1 --selection_seed "$SEED" "$@"
    done
  done
done

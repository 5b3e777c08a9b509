#!/usr/bin/env bash
# Aioli over the instruction tasks, one run per seed.
# Usage: NI_DIR=/path/to/natural-instructions bash scripts/instruction/aioli.sh [extra main.py flags]
# Environment: see common.sh (TASKS, MODEL, OUTPUT_DIR, SEEDS).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/common.sh"  # COMMON flags, MAIN (main.py relative to this folder), TASK_LIST, K, OUT

# The paper's repository has no Aioli script for instruction tasks; these settings are ours: README
# guidance (normalized A, one-hot factor < 1, eta 0.2, lp_steps 4) with one probe order per round so
# that LearnParams (1 x 4 steps x 9 tasks = 36 steps) stays a fifth of a 200-step round: 5 rounds.
for SEED in ${SEEDS:-0 1 2}; do
  python "$MAIN" "${COMMON[@]}" \
    --aioli --aioli_normalize_A --lp_rounds 1 --lp_steps 4 --eta 0.2 --update_steps 200 --one_hot_factor 0.5 \
    --selection_seed "$SEED" "$@"
done

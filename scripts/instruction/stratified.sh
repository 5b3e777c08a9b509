#!/usr/bin/env bash
# Stratified (uniform) mixture over the instruction tasks, one run per seed.
# Usage: NI_DIR=/path/to/natural-instructions bash scripts/instruction/stratified.sh [extra main.py flags]
# Environment: see common.sh (TASKS, MODEL, OUTPUT_DIR, SEEDS).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/common.sh"  # COMMON flags, MAIN (main.py relative to this folder), TASK_LIST, K, OUT

for SEED in ${SEEDS:-0 1 2}; do
  python "$MAIN" "${COMMON[@]}" --sample_rule stratified --selection_seed "$SEED" "$@"
done

#!/usr/bin/env bash
# Stratified vs Aioli on the embedded demo corpus (tiny model, CPU), several seeds, then the
# paper-style comparison table (average test perplexity, mean +- std over seeds).
#   bash scripts/demo/run.sh                 # seeds 0 1 2, a few minutes per run on a laptop CPU
#   SEEDS="0" bash scripts/demo/run.sh --max_steps 100    # extra flags go to every main.py call
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$HERE/../.."
OUT="${OUTPUT_DIR:-./output/demo}"
SEEDS="${SEEDS:-0 1 2}"
for SEED in $SEEDS; do
    python "$ROOT/main.py" --selection_seed "$SEED" --output_dir "$OUT" --no_progress "$@"
    python "$ROOT/main.py" --aioli --selection_seed "$SEED" --output_dir "$OUT" --no_progress "$@"
done
python "$ROOT/mixing_law_fitting.py" report "$OUT" --output "$OUT/report.md" --plots "$OUT/plots"
cat "$OUT/report.md"

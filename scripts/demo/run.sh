#!/usr/bin/env bash
# Stratified vs Aioli on the embedded demo corpus (tiny model, CPU), several seeds, then the
# paper-style comparison table (average test perplexity, mean +- std over seeds).
#   bash scripts/demo/run.sh                 # book + stackexchange, seeds 0 1 2, about a minute per run
#   SLICES="arxiv book github stackexchange wikipedia" bash scripts/demo/run.sh
#   SEEDS="0" bash scripts/demo/run.sh --max_steps 100    # extra flags go to every main.py call
# The default pair is one where the mixture matters on this corpus: the quality benchmark's sweep puts
# its best static mixture off uniform (stackexchange-heavy); Aioli's probes do not detect that here
# (README, "Does it pick better mixtures?").
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$HERE/../.."
OUT="${OUTPUT_DIR:-./output/demo}"
SEEDS="${SEEDS:-0 1 2}"
read -r -a SLICE_LIST <<< "${SLICES:-book stackexchange}"
for SEED in $SEEDS; do
    python "$ROOT/main.py" --slice_list "${SLICE_LIST[@]}" --selection_seed "$SEED" --output_dir "$OUT" --no_progress "$@"
    python "$ROOT/main.py" --aioli --slice_list "${SLICE_LIST[@]}" --selection_seed "$SEED" --output_dir "$OUT" \
        --no_progress "$@"
done
python "$ROOT/mixing_law_fitting.py" report "$OUT" --output "$OUT/report.md" --plots "$OUT/plots"
cat "$OUT/report.md"

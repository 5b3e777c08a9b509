#!/usr/bin/env bash
# DoGE (Fan et al. 2024): cc_github_wikipedia (cc github wikipedia; k=3), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/cc_github_wikipedia/doge/run.sh [extra main.py flags]
# Stages per seed: proxy run learning domain weights by the alignment of each group's gradient
# with the (uniform-mixture) validation gradient (methods/doge.py) -> final static run on the
# proxy's averaged weights.
# Proxy (paper): batch 4 + validation batch 4, --doge_mu 0.01, num_ckpts 20, eval batch 8.
# Outputs: $OUTPUT_DIR/cc_github_wikipedia/doge_proxy_seed<S>/doge.json, $OUTPUT_DIR/cc_github_wikipedia/doge_final_seed<S>.
# Environment and resumption: scripts/lib/common.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$HERE/../../lib/common.sh"
setting cc_github_wikipedia

for SEED in $SEED_LIST; do
  train "$OUT" "doge_proxy_seed$SEED" "${COMMON[@]}" --doge "${DOGE_PROXY[@]}" --custom_name doge_proxy \
    --selection_seed "$SEED" "$@"
  need "$OUT/doge_proxy_seed$SEED/doge.json" "the proxy run's learned weights"
  train "$OUT" "doge_final_seed$SEED" "${COMMON[@]}" --sample_rule mixture \
    --proportions_file "$OUT/doge_proxy_seed$SEED/doge.json" --num_ckpts "$FINAL_CKPTS" --custom_name doge_final \
    --selection_seed "$SEED" "$@"
done

#!/usr/bin/env bash
# DoReMi (Xie et al. 2023): full (arxiv book c4 cc github stackexchange wikipedia; k=7), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/full/doremi/run.sh [extra main.py flags]
# Stages per seed: reference = the stratified run saved with --save_model (stratified.sh; reused
# when it already ran) -> proxy run learning domain weights by excess loss over the reference
# (methods/doremi.py) -> final static run on the proxy's averaged weights.
# Proxy (paper): 40000 steps, batch 8, no accumulation, --doremi_mu 0.01, num_ckpts 5.
# Outputs: $OUTPUT_DIR/full/doremi_proxy_seed<S>/doremi.json, $OUTPUT_DIR/full/doremi_final_seed<S>.
# Environment and resumption: scripts/lib/common.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$HERE/../../lib/common.sh"
setting full

for SEED in $SEED_LIST; do
  stratified "$SEED" "$@"
  REFERENCE="$OUT/stratified_seed$SEED"
  need "$REFERENCE/model" "the reference model: $REFERENCE finished without --save_model; remove it and run again"
  train "$OUT" "doremi_proxy_seed$SEED" "${COMMON[@]}" --doremi --doremi_reference_model_path "$REFERENCE" \
    --doremi_mu 0.01 "${DOREMI_PROXY[@]}" --custom_name doremi_proxy --selection_seed "$SEED" "$@"
  need "$OUT/doremi_proxy_seed$SEED/doremi.json" "the proxy run's learned weights"
  train "$OUT" "doremi_final_seed$SEED" "${COMMON[@]}" --sample_rule mixture \
    --proportions_file "$OUT/doremi_proxy_seed$SEED/doremi.json" --num_ckpts "$FINAL_CKPTS" --custom_name doremi_final \
    --selection_seed "$SEED" "$@"
done

#!/usr/bin/env bash
# Stratified (uniform) baseline: full (arxiv book c4 cc github stackexchange wikipedia; k=7), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/full/stratified.sh [extra main.py flags]
# Output: $OUTPUT_DIR/full/stratified_seed<S> (saved with --save_model: it is also DoReMi's
# reference model and the uniform point of the sweeps, so those pipelines reuse it).
# Environment and resumption: scripts/lib/common.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/common.sh
source "$HERE/../lib/common.sh"
setting full

for SEED in $SEED_LIST; do
  stratified "$SEED" "$@"
done

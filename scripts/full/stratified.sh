#!/usr/bin/env bash
# Stratified (uniform) baseline: full (arxiv book c4 cc github stackexchange wikipedia; k=7), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/full/stratified.sh [extra main.py flags]
# Output: $OUTPUT_DIR/full/stratified_seed<S> (saved with --save_model: it is also DoReMi's
# reference model and the uniform point of the sweeps, so those pipelines reuse it).
# Pipeline: scripts/lib/pipelines.sh (stratified_pipeline); environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/pipelines.sh"
setting full
stratified_pipeline "$@"

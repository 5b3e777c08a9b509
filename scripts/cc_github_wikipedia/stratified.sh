#!/usr/bin/env bash
# Stratified (uniform) baseline: cc_github_wikipedia (cc github wikipedia; k=3), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/cc_github_wikipedia/stratified.sh [extra main.py flags]
# Output: $OUTPUT_DIR/cc_github_wikipedia/stratified_seed<S> (saved with --save_model: it is also DoReMi's
# reference model and the uniform point of the sweeps, so those pipelines reuse it).
# Pipeline: scripts/lib/pipelines.sh (stratified_pipeline); environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/pipelines.sh"
setting cc_github_wikipedia
stratified_pipeline "$@"

#!/usr/bin/env bash
# DoReMi (Xie et al. 2023): arxiv_stackexchange (arxiv stackexchange; k=2), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/arxiv_stackexchange/doremi/run.sh [extra main.py flags]
# Stages per seed: reference = the stratified run saved with --save_model (stratified.sh; reused
# when it already ran) -> proxy run learning domain weights by excess loss over the reference
# (methods/doremi.py) -> final static run on the proxy's averaged weights.
# Proxy (paper): --doremi_mu 0.01, micro-batches of 4 accumulated 2 per update, num_ckpts 40; with
# correct accumulation: 5000 updates of 8 sequences (see DOREMI_PROXY in scripts/lib/common.sh).
# Outputs: $OUTPUT_DIR/arxiv_stackexchange/doremi_proxy_seed<S>/doremi.json, $OUTPUT_DIR/arxiv_stackexchange/doremi_final_seed<S>.
# Pipeline: scripts/lib/pipelines.sh (doremi_pipeline); environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting arxiv_stackexchange
doremi_pipeline "$@"

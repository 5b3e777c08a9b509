#!/usr/bin/env bash
# DoReMi (Xie et al. 2023): full (arxiv book c4 cc github stackexchange wikipedia; k=7), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/full/doremi/run.sh [extra main.py flags]
# Stages per seed: reference = the stratified run saved with --save_model (stratified.sh; reused
# when it already ran) -> proxy run learning domain weights by excess loss over the reference
# (methods/doremi.py) -> final static run on the proxy's averaged weights.
# Proxy (paper): 40000 steps, batch 8, no accumulation, --doremi_mu 0.01, num_ckpts 5.
# Outputs: $OUTPUT_DIR/full/doremi_proxy_seed<S>/doremi.json, $OUTPUT_DIR/full/doremi_final_seed<S>.
# Pipeline: scripts/lib/pipelines.sh (doremi_pipeline); environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting full
doremi_pipeline "$@"

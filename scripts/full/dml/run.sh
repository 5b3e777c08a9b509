#!/usr/bin/env bash
# Data Mixing Laws (Ye et al. 2024): full (arxiv book c4 cc github stackexchange wikipedia; k=7), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/full/dml/run.sh [extra main.py flags]
# Stages per seed: the sweep of sweep/run.sh (reused when it already ran) -> fit the static law
# L_i(p) = c_i + k_i exp(sum_j t_ij p_j) to it and minimize its mean (mixing_law_fitting.py linreg)
# -> the final static run on the optimum.
# Outputs: $OUTPUT_DIR/full/dml_fit_seed<S>.json, $OUTPUT_DIR/full/dml_final_seed<S> (custom_name dml_final).
# Pipeline: scripts/lib/pipelines.sh (dml_pipeline); environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting full
dml_pipeline "$@"

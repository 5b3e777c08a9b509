#!/usr/bin/env bash
# Dynamic mixing-law sweep (parents and children): arxiv_stackexchange (arxiv stackexchange; k=2), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/arxiv_stackexchange/sweep/dynamic.sh [extra main.py flags]
# Parents: one static run per mixture, stopped at BREAK_STEPS (default 2000; the paper's child
# script pointed at break 4000 while its parents broke at 2000: fixed) with their full state.
# Children: from every parent, one run per mixture for REMAINING_STEPS (default 100) more steps
# (--resume_model_path). Mixtures: the 0.1 grid (11 parents x 11 children).
# Seeds: SEEDS, default 0 only (one seed is ~7 full runs of compute). Set BREAK_STEPS and
# REMAINING_STEPS here, not as extra flags (the children would inherit a --break_steps).
# Outputs: $OUTPUT_DIR/arxiv_stackexchange/dynamic_seed<S>/parent<NN> and parent<NN>_child<MM>; fit them with
# mixing_law_fitting.py dynamic --run_dir $OUTPUT_DIR/arxiv_stackexchange/dynamic_seed<S>.
# Pipeline: scripts/lib/pipelines.sh (dynamic_pipeline); environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting arxiv_stackexchange
dynamic_pipeline "$@"

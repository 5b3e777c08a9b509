#!/usr/bin/env bash
# Grid search: cc_github_wikipedia (cc github wikipedia; k=3), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/cc_github_wikipedia/sweep/run.sh [extra main.py flags]
# One static run per swept mixture, then the winner (lowest mean validation loss over groups).
# k=3: a seeded Dirichlet cover (alpha 1.5) of SWEEP_POINTS mixtures (default 10: the paper's
# "10 extra runs"), different for every seed.
# The uniform point is the stratified run (run here when missing), not a second copy of it.
# Outputs: $OUTPUT_DIR/cc_github_wikipedia/sweep_seed<S>/mix<NN> (runs), .../mixtures.txt, and
# $OUTPUT_DIR/cc_github_wikipedia/grid_seed<S>.json (the winner; usable as --proportions_file).
# Pipeline: scripts/lib/pipelines.sh (sweep_pipeline); environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting cc_github_wikipedia
sweep_pipeline "$@"

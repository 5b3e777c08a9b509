#!/usr/bin/env bash
# Grid search: full (arxiv book c4 cc github stackexchange wikipedia; k=7), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/full/sweep/run.sh [extra main.py flags]
# One static run per swept mixture, then the winner (lowest mean validation loss over groups).
# k=7: a seeded Dirichlet cover (alpha 1.5) of SWEEP_POINTS mixtures (default 10: the paper's
# "10 extra runs"), different for every seed.
# The uniform point is the stratified run (run here when missing), not a second copy of it.
# Outputs: $OUTPUT_DIR/full/sweep_seed<S>/mix<NN> (runs), .../mixtures.txt, and
# $OUTPUT_DIR/full/grid_seed<S>.json (the winner; usable as --proportions_file).
# Pipeline: scripts/lib/pipelines.sh (sweep_pipeline); environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting full
sweep_pipeline "$@"

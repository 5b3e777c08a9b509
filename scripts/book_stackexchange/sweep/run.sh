#!/usr/bin/env bash
# Grid search: book_stackexchange (book stackexchange; k=2), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/book_stackexchange/sweep/run.sh [extra main.py flags]
# One static run per swept mixture, then the winner (lowest mean validation loss over groups).
# k=2: the 0.1 grid of p_book (11 points; SWEEP_GRID=0.25 for another step).
# The uniform point is the stratified run (run here when missing), not a second copy of it.
# Outputs: $OUTPUT_DIR/book_stackexchange/sweep_seed<S>/mix<NN> (runs), .../mixtures.txt, and
# $OUTPUT_DIR/book_stackexchange/grid_seed<S>.json (the winner; usable as --proportions_file).
# Pipeline: scripts/lib/pipelines.sh (sweep_pipeline); environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting book_stackexchange
sweep_pipeline "$@"

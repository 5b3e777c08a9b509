#!/usr/bin/env bash
# Aioli diagonal-A ablation: full (arxiv book c4 cc github stackexchange wikipedia; k=7), pythia-160m from scratch, one run per seed.
# Usage: SLIMPAJAMA_DIR=/path/to/shards-or-raw-slimpajama [OUTPUT_DIR=./output] [SEEDS="0 1 2"] bash scripts/full/aioli/diagonal.sh [extra main.py flags]
# Extra flags are appended last to every run (e.g. --device; not --output_dir or --run_name: use OUTPUT_DIR); SEEDS overrides the seeds.
# Diagonal A (A_ii = D_ii / one_hot_factor, off-diagonal 0) with the paper's ablation settings:
# --update_steps 2000 and one-hot probes (--one_hot_factor 1, where D_ii is the self-effect itself).
# The paper's script spelled the flag --bandit_diagonal, which its parser did not know.
# The paper ran seeds 0-2 for the 40k-step full setting.
# Output: $OUTPUT_DIR/full/aioli_diagonal_seed<S> (custom_name diagonal); a re-run reuses finished runs and
# resumes interrupted ones.
# Pipeline: scripts/lib/pipelines.sh (aioli_diagonal_pipeline); the row: AIOLI_* in scripts/lib/common.sh;
# environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting full
aioli_diagonal_pipeline "$@"

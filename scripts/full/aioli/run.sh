#!/usr/bin/env bash
# Aioli, unrestricted: full (arxiv book c4 cc github stackexchange wikipedia; k=7), pythia-160m from scratch, one run per seed.
# Usage: SLIMPAJAMA_DIR=/path/to/shards-or-raw-slimpajama [OUTPUT_DIR=./output] [SEEDS="0 1 2"] bash scripts/full/aioli/run.sh [extra main.py flags]
# Extra flags are appended last to every run (e.g. --device; not --output_dir or --run_name: use OUTPUT_DIR); SEEDS overrides the seeds.
# The paper's full row. Its `--aioli_prior 1 1 1 1 1 1 1 --prior_steps 0` is left out: it means
# "start from uniform, no prior phase", which is the default here (it hung in the paper's code).
# The paper ran seeds 0-2 for the 40k-step full setting.
# Output: $OUTPUT_DIR/full/aioli_seed<S>; a re-run reuses finished runs and
# resumes interrupted ones.
# Pipeline: scripts/lib/pipelines.sh (aioli_pipeline); the row: AIOLI_* in scripts/lib/common.sh;
# environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting full
aioli_pipeline "$@"

#!/usr/bin/env bash
# Aioli, unrestricted: arxiv_stackexchange (arxiv stackexchange; k=2), pythia-160m from scratch, one run per seed.
# Usage: SLIMPAJAMA_DIR=/path/to/shards-or-raw-slimpajama [OUTPUT_DIR=./output] [SEEDS="0 1 2 3 4"] bash scripts/arxiv_stackexchange/aioli/run.sh [extra main.py flags]
# Extra flags are appended last to every run (e.g. --device; not --output_dir or --run_name: use OUTPUT_DIR); SEEDS overrides the seeds.
# The paper's k=2 row (arxiv/stackexchange script); the paper scripted no Aioli run for
# github/c4 or book/stackexchange, so those reuse the k=2 row unchanged (our choice).
# Output: $OUTPUT_DIR/arxiv_stackexchange/aioli_seed<S>; a re-run reuses finished runs and
# resumes interrupted ones.
# Pipeline: scripts/lib/pipelines.sh (aioli_pipeline); the row: AIOLI_* in scripts/lib/common.sh;
# environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting arxiv_stackexchange
aioli_pipeline "$@"

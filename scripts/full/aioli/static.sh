#!/usr/bin/env bash
# Aioli static ablation: full (arxiv book c4 cc github stackexchange wikipedia; k=7), pythia-160m from scratch, one run per seed.
# Usage: SLIMPAJAMA_DIR=/path/to/shards-or-raw-slimpajama [OUTPUT_DIR=./output] [SEEDS="0 1 2"] bash scripts/full/aioli/static.sh [extra main.py flags]
# Extra flags are appended last to every run (e.g. --device; not --output_dir or --run_name: use OUTPUT_DIR); SEEDS overrides the seeds.
# "Aioli static": one LearnParams at the start, then that mixture for the whole run. The paper got
# this with --update_steps 40000; here --aioli_static says it directly (--update_steps is not needed).
# The paper ran seeds 0-2 for the 40k-step full setting.
# Output: $OUTPUT_DIR/full/aioli_static_seed<S> (custom_name aioli_static); a re-run reuses finished runs and
# resumes interrupted ones.
# Pipeline: scripts/lib/pipelines.sh (aioli_static_pipeline); the row: AIOLI_* in scripts/lib/common.sh;
# environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting full
aioli_static_pipeline "$@"

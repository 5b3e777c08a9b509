#!/usr/bin/env bash
# Aioli, restricted setting: book_stackexchange (book stackexchange; k=2), pythia-160m from scratch, one run per seed.
# Usage: SLIMPAJAMA_DIR=/path/to/shards-or-raw-slimpajama [OUTPUT_DIR=./output] [SEEDS="0 1 2 3 4"] [AIOLI_PRIOR="w1 w2 ..."] [PRIOR_STEPS=N] bash scripts/book_stackexchange/aioli/restricted.sh [extra main.py flags]
# Extra flags are appended last to every run (e.g. --device; not --output_dir or --run_name: use OUTPUT_DIR); SEEDS overrides the seeds.
# Restricted setting: a mixture learned cheaply elsewhere (a grid point of a short sweep, the DML
# optimum, DoReMi/DoGE weights) is the prior for the first PRIOR_STEPS steps; Aioli then adjusts it
# for the rest of the run, starting FROM it (the first update multiplies onto the prior).
# Our choices: PRIOR_STEPS = half the run (2500 of 5000); AIOLI_PRIOR defaults to uniform
# ("1 1"): set it to your learned mixture, in --slice_list order (book stackexchange), e.g.
# AIOLI_PRIOR="3 7". Aioli's own settings are the unrestricted ones (the row below).
# The paper's k=2 row (arxiv/stackexchange script); the paper scripted no Aioli run for
# github/c4 or book/stackexchange, so those reuse the k=2 row unchanged (our choice).
# Output: $OUTPUT_DIR/book_stackexchange/aioli_restricted_seed<S> (custom_name restricted); a re-run reuses finished runs and
# resumes interrupted ones.
# Pipeline: scripts/lib/pipelines.sh (aioli_restricted_pipeline); the row: AIOLI_* in scripts/lib/common.sh;
# environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting book_stackexchange
aioli_restricted_pipeline "$@"

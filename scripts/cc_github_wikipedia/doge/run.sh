#!/usr/bin/env bash
# DoGE (Fan et al. 2024): cc_github_wikipedia (cc github wikipedia; k=3), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/cc_github_wikipedia/doge/run.sh [extra main.py flags]
# Stages per seed: proxy run learning domain weights by the alignment of each group's gradient
# with the (uniform-mixture) validation gradient (methods/doge.py) -> final static run on the
# proxy's averaged weights.
# Proxy (paper): batch 4 + validation batch 4, --doge_mu 0.01, num_ckpts 20, eval batch 8.
# Outputs: $OUTPUT_DIR/cc_github_wikipedia/doge_proxy_seed<S>/doge.json, $OUTPUT_DIR/cc_github_wikipedia/doge_final_seed<S>.
# Pipeline: scripts/lib/pipelines.sh (doge_pipeline); environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting cc_github_wikipedia
doge_pipeline "$@"

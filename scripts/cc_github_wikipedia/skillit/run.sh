#!/usr/bin/env bash
# Skill-it (online): cc_github_wikipedia (cc github wikipedia; k=3), pythia-160m from scratch, every seed of SEEDS.
# Usage: SLIMPAJAMA_DIR=/path/to/data [OUTPUT_DIR=./output] [SEEDS="0 1"] bash scripts/cc_github_wikipedia/skillit/run.sh [extra main.py flags]
# Stages per seed: k one-hot static runs (graph learning) -> the skills graph G_ij = relative
# validation-loss drop of group j when training on group i (mixing_law_fitting.py skills_graph)
# -> the online Skill-it run on that graph.
# Settings (paper): one-hot runs of the full length with num_ckpts 40; online run --update_steps 500 --skillit_window 3 --eta 0.2, num_ckpts 20.
# Outputs: $OUTPUT_DIR/cc_github_wikipedia/skillit_graph_seed<S>/{onehot_<group>,graph.json}, $OUTPUT_DIR/cc_github_wikipedia/skillit_seed<S>.
# Pipeline: scripts/lib/pipelines.sh (skillit_pipeline); environment and resumption: scripts/lib/common.sh.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/pipelines.sh"
setting cc_github_wikipedia
skillit_pipeline "$@"

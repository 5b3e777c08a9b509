#!/usr/bin/env bash
# scripts/run.sh SETTING PIPELINE [extra main.py flags]: one pipeline of one setting, every seed of SEEDS.
# `bash scripts/run.sh --help` lists the settings, pipelines and environment; scripts/README.md explains them.
set -euo pipefail
# shellcheck source=scripts/lib/pipelines.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/pipelines.sh"

# PIPELINE: one line each, "name: what it runs"; name runs the function <name>_pipeline of lib/pipelines.sh.
PIPELINE_TABLE=(
  "stratified: the uniform mixture, saved with --save_model (DoReMi's reference, the sweep's uniform point)"
  "sweep: one static run per swept mixture, then the best one (grid_seed<S>.json)"
  "dml: the sweep -> Data Mixing Laws fit (mixing_law_fitting.py linreg) -> run at the fitted optimum"
  "skillit: k one-hot runs -> skills graph (mixing_law_fitting.py skills_graph) -> online Skill-it run"
  "doremi: stratified reference -> DoReMi proxy -> run on the proxy's averaged weights"
  "doge: DoGE proxy -> run on the proxy's averaged weights"
  "odm: ODM online run (EXP3 on the groups' training losses) -> run on its averaged weights"
  "ado: ADO online run (per-group scaling laws of the training losses) -> run on its averaged weights"
  "aioli: Aioli, unrestricted"
  "aioli_restricted: a prior mixture (AIOLI_PRIOR) for PRIOR_STEPS steps, then Aioli from it"
  "aioli_static: ablation: one LearnParams at the start, then that mixture for the whole run"
  "aioli_diagonal: ablation: Aioli with a diagonal A and one-hot probes"
  "dynamic: dynamic mixing-law sweep: parents stopped at BREAK_STEPS, children for REMAINING_STEPS"
)

pipeline_names() { table_keys PIPELINE_TABLE; }
is_pipeline() { table_value PIPELINE_TABLE "$1" > /dev/null; }

usage() {
  local row
  cat <<EOF
usage: bash scripts/run.sh SETTING PIPELINE [extra main.py flags]

Runs PIPELINE for SETTING, once per seed of SEEDS, into \$OUTPUT_DIR/SETTING/. The extra flags are
appended last to every main.py call (the last value of a flag wins); set outputs with OUTPUT_DIR,
never with --output_dir or --run_name. Running the same command again reuses finished runs and
resumes interrupted ones.

settings (groups in --slice_list order):
EOF
  for row in "${SETTING_TABLE[@]}"; do printf '  %-26s %s\n' "${row%%:*}" "${row#*: }"; done
  echo
  echo "pipelines:"
  for row in "${PIPELINE_TABLE[@]}"; do printf '  %-18s %s\n' "${row%%:*}" "${row#*: }"; done
  cat <<'EOF'

environment:
  SLIMPAJAMA_DIR   prepared shards or raw SlimPajama (required)
  OUTPUT_DIR       root of all outputs (default ./output)
  SEEDS            seeds, space-separated (default "0 1 2 3 4"; full: "0 1 2"; dynamic: "0")
  PYTHON           interpreter that runs main.py and mixing_law_fitting.py (default python)
  SWEEP_GRID       sweep/dml, k=2: grid step of the first group's weight (default 0.1)
  SWEEP_POINTS     sweep/dml, k>=3: mixtures of the seeded Dirichlet cover (default 10)
  AIOLI_PRIOR      aioli_restricted: prior weights in --slice_list order (default uniform)
  PRIOR_STEPS      aioli_restricted: steps on the prior (default half the run)
  BREAK_STEPS      dynamic: step at which the parents stop (default 2000)
  REMAINING_STEPS  dynamic: steps of each child (default 100)
  RUNNER           sweep/dml/skillit: run a stage's independent runs together: local:N, local:N:gpus,
                   slurm (SLURM_PARTITION, SLURM_GPUS_PER_JOB, SLURM_TIMEOUT_MIN; via submitit)
EOF
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
if ! setting_groups "$1" > /dev/null; then
  echo "scripts/run.sh: unknown setting '$1' (settings: $(setting_names))" >&2
  exit 2
fi
if [[ $# -lt 2 ]]; then
  echo "scripts/run.sh: no pipeline given after the setting (pipelines: $(pipeline_names))" >&2
  exit 2
fi
if ! is_pipeline "$2"; then
  echo "scripts/run.sh: unknown pipeline '$2' (pipelines: $(pipeline_names))" >&2
  exit 2
fi
setting "$1"
pipeline="$2"
shift 2
"${pipeline}_pipeline" "$@"

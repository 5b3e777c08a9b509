#!/usr/bin/env bash
# Skill-it over the instruction tasks: (1) K one-hot runs learn the skills graph, (2) one Skill-it run
# per seed with that graph.
# Usage: NI_DIR=/path/to/natural-instructions bash scripts/instruction/skillit.sh [extra main.py flags]
# Environment: see common.sh (TASKS, MODEL, OUTPUT_DIR, SEEDS).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/common.sh"  # COMMON flags, MAIN (main.py relative to this folder), TASK_LIST, K, OUT

for SEED in ${SEEDS:-0 1 2}; do
  # (1) graph learning: one full-length static run per task, trained on that task alone
  RUNS=()
  for ((j = 0; j < K; j++)); do
    P=()
    for ((l = 0; l < K; l++)); do P+=("$([[ $l == "$j" ]] && echo 1 || echo 0)"); done
    NAME="skillit-graph-${TASK_LIST[$j]}-seed$SEED"
    RUNS+=("$OUT/skillit_graph/$NAME")
    done_run "skillit_graph/$NAME" && continue
    python "$MAIN" "${COMMON[@]}" --output_dir "$OUT/skillit_graph" --run_name "$NAME" \
      --sample_rule mixture --proportions "${P[@]}" --selection_seed "$SEED" "$@"
  done
  GRAPH="$OUT/skillit_graph/skills_graph_seed$SEED.json"
  python "$ROOT/mixing_law_fitting.py" skills_graph --run_dir "${RUNS[@]}" --seed "$SEED" --output "$GRAPH"

  # (2) Skill-it. The paper's SlimPajama row (eta 0.2, window 3); update_steps 200 (ours: five
  # updates in 1000 steps, on the val losses of every 100 steps).
  python "$MAIN" "${COMMON[@]}" --skillit --graph_path "$GRAPH" --eta 0.2 --update_steps 200 --skillit_window 3 \
    --selection_seed "$SEED" "$@"
done

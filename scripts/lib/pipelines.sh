# shellcheck shell=bash
# The pipelines, one function <name>_pipeline each, written once for every setting. Sourced, never run
# on its own; scripts/run.sh SETTING NAME (which every scripts/<setting>/... entry script calls) runs
#   setting SETTING; NAME_pipeline "$@"
# where `setting` (scripts/lib/common.sh) defines the groups, k, steps, seeds and the paper's
# per-setting numbers that the functions read. "$@" (the user's extra main.py flags) goes last to
# every main.py call. Environment (SLIMPAJAMA_DIR, OUTPUT_DIR, SEEDS, PYTHON) and resumption (a
# finished stage is reused, an interrupted one resumed): scripts/lib/common.sh. Outputs go to
# $OUTPUT_DIR/<setting>/ under the run names given below.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# stratified_pipeline FLAGS...: the uniform mixture, stratified_seed<S>, saved with --save_model (it is
# also DoReMi's reference model and the uniform point of the sweeps, which reuse it).
stratified_pipeline() {
  local seed
  for seed in $SEED_LIST; do
    stratified "$seed" "$@"
  done
}

# sweep_pipeline FLAGS...: grid search. One static run per swept mixture (sweep_seed<S>/mix<NN>, with
# sweep_seed<S>/mixtures.txt; k=2: the SWEEP_GRID grid, default 0.1; k>=3: a seeded Dirichlet cover of
# SWEEP_POINTS mixtures, default 10, alpha 1.5, different per seed; the uniform point is the stratified
# run), then the winner (lowest mean validation loss over groups) in grid_seed<S>.json.
sweep_pipeline() {
  local seed
  for seed in $SEED_LIST; do
    sweep "$seed" "$@"
    fit best --run_dir "${SWEEP_DIRS[@]}" --output "$OUT/grid_seed$seed.json"
  done
}

# dml_pipeline FLAGS...: Data Mixing Laws. The sweep of sweep_pipeline (reused when it already ran) ->
# the static law L_i(p) = c_i + k_i exp(sum_j t_ij p_j) fitted to it and its mean minimized
# (mixing_law_fitting.py linreg -> dml_fit_seed<S>.json) -> the final static run on the optimum,
# dml_final_seed<S> (custom_name dml_final, FINAL_CKPTS checkpoints).
dml_pipeline() {
  local seed
  for seed in $SEED_LIST; do
    sweep "$seed" "$@"
    fit linreg --run_dir "${SWEEP_DIRS[@]}" --output "$OUT/dml_fit_seed$seed.json"
    train "$OUT" "dml_final_seed$seed" "${COMMON[@]}" --sample_rule mixture --proportions_file "$OUT/dml_fit_seed$seed.json" \
      --num_ckpts "$FINAL_CKPTS" --custom_name dml_final --selection_seed "$seed" "$@"
  done
}

# skillit_pipeline FLAGS...: Skill-it (online). k one-hot static runs of the full length
# (skillit_graph_seed<S>/onehot_<group>, ONEHOT_CKPTS checkpoints) -> the skills graph G_ij = relative
# validation-loss drop of group j when training on group i (mixing_law_fitting.py skills_graph ->
# skillit_graph_seed<S>/graph.json) -> the online run skillit_seed<S> (--update_steps SKILLIT_UPDATE
# --skillit_window 3 --eta 0.2, 20 checkpoints).
skillit_pipeline() {
  local seed graph i
  local -a p
  for seed in $SEED_LIST; do
    graph="$OUT/skillit_graph_seed$seed"
    batch_begin "skillit_onehot_seed$seed"
    for i in "${!SLICES[@]}"; do
      read -r -a p <<< "$(onehot "$i")"
      train "$graph" "onehot_${SLICES[$i]}" "${COMMON[@]}" --sample_rule mixture --proportions "${p[@]}" \
        --num_ckpts "$ONEHOT_CKPTS" --custom_name skillit_graph --selection_seed "$seed" "$@"
    done
    batch_end
    fit skills_graph --run_dir "$graph" --output "$graph/graph.json"
    train "$OUT" "skillit_seed$seed" "${COMMON[@]}" --skillit --graph_path "$graph/graph.json" \
      --update_steps "$SKILLIT_UPDATE" --skillit_window 3 --eta 0.2 --num_ckpts 20 --selection_seed "$seed" "$@"
  done
}

# doremi_pipeline FLAGS...: DoReMi. Reference = the stratified run (reused when it already ran) ->
# proxy run doremi_proxy_seed<S> learning domain weights by excess loss over the reference
# (--doremi_mu 0.01 and DOREMI_PROXY; methods/doremi.py; doremi_proxy_seed<S>/doremi.json) -> final
# static run doremi_final_seed<S> on the proxy's averaged weights.
doremi_pipeline() {
  local seed reference
  batch_begin doremi_reference
  for seed in $SEED_LIST; do
    stratified "$seed" "$@"
  done
  batch_end
  batch_begin doremi_proxy
  for seed in $SEED_LIST; do
    reference="$OUT/stratified_seed$seed"
    need "$reference/model" "the reference model: $reference finished without --save_model; remove it and run again"
    train "$OUT" "doremi_proxy_seed$seed" "${COMMON[@]}" --doremi --doremi_reference_model_path "$reference" \
      --doremi_mu 0.01 "${DOREMI_PROXY[@]}" --custom_name doremi_proxy --selection_seed "$seed" "$@"
  done
  batch_end
  final_runs doremi doremi_proxy "$@"
}

# doge_pipeline FLAGS...: DoGE. Proxy run doge_proxy_seed<S> (DOGE_PROXY) learning domain weights by
# the alignment of each group's gradient with the (uniform-mixture) validation gradient
# (methods/doge.py; doge_proxy_seed<S>/doge.json) -> final static run doge_final_seed<S> on the
# proxy's averaged weights.
doge_pipeline() {
  local seed
  batch_begin doge_proxy
  for seed in $SEED_LIST; do
    train "$OUT" "doge_proxy_seed$seed" "${COMMON[@]}" --doge "${DOGE_PROXY[@]}" --custom_name doge_proxy \
      --selection_seed "$seed" "$@"
  done
  batch_end
  final_runs doge doge_proxy "$@"
}

# odm_pipeline FLAGS...: ODM, online data mixing. The online run odm_seed<S> (an EXP3 bandit over the
# groups rewarded by their training losses, from the end of --warmup_steps; methods/odm.py;
# odm_seed<S>/odm.json) -> final static run odm_final_seed<S> on the online run's averaged weights.
odm_pipeline() {
  local seed
  batch_begin odm_online
  for seed in $SEED_LIST; do
    train "$OUT" "odm_seed$seed" "${COMMON[@]}" --odm --num_ckpts "$FINAL_CKPTS" --selection_seed "$seed" "$@"
  done
  batch_end
  final_runs odm odm "$@"
}

# ado_pipeline FLAGS...: ADO, adaptive data optimization. The online run ado_seed<S> (per-group scaling laws
# fitted to the training losses, refitted on the setting's schedule ADO_RUN; methods/ado.py;
# ado_seed<S>/ado.json) -> final static run ado_final_seed<S> on the online run's averaged weights.
ado_pipeline() {
  local seed
  batch_begin ado_online
  for seed in $SEED_LIST; do
    train "$OUT" "ado_seed$seed" "${COMMON[@]}" --ado "${ADO_RUN[@]}" --num_ckpts "$FINAL_CKPTS" \
      --selection_seed "$seed" "$@"
  done
  batch_end
  final_runs ado ado "$@"
}

# dynamic_pipeline FLAGS...: the dynamic mixing-law sweep, per seed of SEEDS (default 0 only: one seed
# is ~7 full runs of compute), in dynamic_seed<S>/. Parents: one static run per mixture of the sweep's
# mixtures (the same as sweep_pipeline's), stopped at BREAK_STEPS (default 2000) with their full state,
# parent<NN>. Children: from every parent, one run per mixture for REMAINING_STEPS (default 100) more
# steps (--resume_model_path), parent<NN>_child<MM>. Set BREAK_STEPS and REMAINING_STEPS in the
# environment, not as extra flags (the children would inherit a --break_steps). Fit them with
# mixing_law_fitting.py dynamic --run_dir $OUTPUT_DIR/<setting>/dynamic_seed<S>.
dynamic_pipeline() {
  local break="${BREAK_STEPS:-2000}" remaining="${REMAINING_STEPS:-100}" seed dir parent i j
  local -a mix p c
  for seed in ${SEEDS:-0}; do
    dir="$OUT/dynamic_seed$seed"
    mixtures "$seed" "$dir/mixtures.txt"
    mapfile -t mix < <(grep -v '^$' "$dir/mixtures.txt")
    batch_begin "dynamic_parents_seed$seed"
    for i in "${!mix[@]}"; do
      read -r -a p <<< "${mix[$i]//,/ }"
      train "$dir" "$(printf 'parent%02d' $((i + 1)))" "${COMMON[@]}" --sample_rule mixture --proportions "${p[@]}" \
        --break_steps "$break" --num_ckpts 20 --selection_seed "$seed" "$@"
    done
    batch_end
    batch_begin "dynamic_children_seed$seed"
    for i in "${!mix[@]}"; do
      parent="$(printf 'parent%02d' $((i + 1)))"
      for j in "${!mix[@]}"; do
        read -r -a c <<< "${mix[$j]//,/ }"
        train "$dir" "${parent}_child$(printf '%02d' $((j + 1)))" "${COMMON[@]}" --sample_rule mixture --proportions "${c[@]}" \
          --resume_model_path "$dir/$parent" --remaining_steps "$remaining" --num_ckpts 1 --selection_seed "$seed" "$@"
      done
    done
    batch_end
  done
}

# aioli_runs NAME CUSTOM N METHOD_FLAGS(N of them)... FLAGS...: one Aioli run per seed of SEED_LIST,
# NAME_seed<S>: COMMON, 20 checkpoints, AIOLI_RUN, --aioli --aioli_normalize_A, the METHOD_FLAGS, the
# seed, --custom_name CUSTOM (none when empty), then FLAGS.
aioli_runs() {
  local name="$1" custom="$2" n="$3" seed
  shift 3
  local -a method=("${@:1:n}") tag=()
  shift "$n"
  if [[ -n $custom ]]; then tag=(--custom_name "$custom"); fi
  for seed in $SEED_LIST; do
    train "$OUT" "${name}_seed$seed" "${COMMON[@]}" --num_ckpts 20 ${AIOLI_RUN[@]+"${AIOLI_RUN[@]}"} \
      --aioli --aioli_normalize_A "${method[@]}" --selection_seed "$seed" ${tag[@]+"${tag[@]}"} "$@"
  done
}

# aioli_pipeline FLAGS...: Aioli, unrestricted, with the setting's row (AIOLI_LP, --ema AIOLI_EMA,
# --update_steps AIOLI_UPDATE, --one_hot_factor AIOLI_OHF): aioli_seed<S>.
aioli_pipeline() {
  local -a method=("${AIOLI_LP[@]}" --ema "$AIOLI_EMA" --update_steps "$AIOLI_UPDATE" --one_hot_factor "$AIOLI_OHF")
  aioli_runs aioli "" "${#method[@]}" "${method[@]}" "$@"
}

# aioli_restricted_pipeline FLAGS...: Aioli, restricted setting: the unrestricted row, but the mixture
# AIOLI_PRIOR (weights in --slice_list order; default uniform) is used for the first PRIOR_STEPS steps
# (default half the run) and Aioli starts FROM it: aioli_restricted_seed<S> (custom_name restricted).
aioli_restricted_pipeline() {
  local -a prior
  read -r -a prior <<< "${AIOLI_PRIOR:-$(printf '1 %.0s' "${SLICES[@]}")}"
  local -a method=("${AIOLI_LP[@]}" --ema "$AIOLI_EMA" --update_steps "$AIOLI_UPDATE" --one_hot_factor "$AIOLI_OHF"
    --aioli_prior "${prior[@]}" --prior_steps "${PRIOR_STEPS:-$((STEPS / 2))}")
  aioli_runs aioli_restricted restricted "${#method[@]}" "${method[@]}" "$@"
}

# aioli_static_pipeline FLAGS...: the "Aioli static" ablation: one LearnParams at the start (AIOLI_LP,
# --one_hot_factor AIOLI_OHF), then that mixture for the whole run (--aioli_static):
# aioli_static_seed<S> (custom_name aioli_static).
aioli_static_pipeline() {
  local -a method=("${AIOLI_LP[@]}" --one_hot_factor "$AIOLI_OHF" --aioli_static)
  aioli_runs aioli_static aioli_static "${#method[@]}" "${method[@]}" "$@"
}

# aioli_diagonal_pipeline FLAGS...: the diagonal-A ablation (A_ii = D_ii / one_hot_factor, off-diagonal
# 0) with the paper's ablation settings: AIOLI_LP, --ema AIOLI_EMA, --update_steps 2000 and one-hot
# probes (--one_hot_factor 1): aioli_diagonal_seed<S> (custom_name diagonal).
aioli_diagonal_pipeline() {
  local -a method=("${AIOLI_LP[@]}" --ema "$AIOLI_EMA" --update_steps 2000 --one_hot_factor 1 --aioli_diagonal)
  aioli_runs aioli_diagonal diagonal "${#method[@]}" "${method[@]}" "$@"
}

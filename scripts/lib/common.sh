# shellcheck shell=bash
# Shared pieces of the pipelines; the pipelines themselves are in scripts/lib/pipelines.sh, which
# sources this file. Sourced, never run on its own. Every pipeline is ONE command, e.g.
#   SLIMPAJAMA_DIR=/data/slimpajama bash scripts/run.sh arxiv_stackexchange doremi [extra main.py flags]
# (scripts/README.md; the paper-style scripts/<setting>/... entry points call exactly that).
# Environment:
#   SLIMPAJAMA_DIR  prepared shards or raw SlimPajama (required)
#   OUTPUT_DIR      root of all outputs (default ./output); runs go to $OUTPUT_DIR/<setting>/...
#   SEEDS           seeds to run (default "0 1 2 3 4"; full setting "0 1 2")
#   PYTHON          interpreter (default python)
#   RUNNER          how a stage's independent runs (sweep points, one-hot runs) are run: unset = one
#                   after the other here; local:N = N at once here (local:N:gpus = one GPU each);
#                   slurm = one Slurm job array through submitit (SLURM_PARTITION, SLURM_TIMEOUT_MIN,
#                   SLURM_GPUS_PER_JOB). The commands are written to $OUTPUT_DIR/<setting>/<stage>.commands.txt
#                   and run by scripts/run_many.py.
# Extra arguments are appended LAST to every main.py call (argparse: the last flag wins), so they
# override anything here (tests shrink the runs this way). Do not pass --output_dir or --run_name
# there: the stages find each other's outputs by these names; use OUTPUT_DIR instead.
#
# Runs are idempotent: a stage whose run finished (results.json) is reused, one that left a checkpoint
# is resumed (--resume), one that left nothing usable is started again. So an interrupted pipeline is
# continued by running the same command again.

LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MAIN="$LIB_DIR/../../main.py"
FIT="$LIB_DIR/../../mixing_law_fitting.py"
PY="${PYTHON:-python}"

log() { echo "[pipeline] $*" >&2; }

# The settings, "name: groups in --slice_list order" (scripts/run.sh lists and checks names with these).
SETTING_TABLE=(
  "arxiv_stackexchange: arxiv stackexchange"
  "github_c4: github c4"
  "book_stackexchange: book stackexchange"
  "arxiv_book_stackexchange: arxiv book stackexchange"
  "cc_github_wikipedia: cc github wikipedia"
  "full: arxiv book c4 cc github stackexchange wikipedia"
)

# table_keys ARRAY: the names of its "name: value" rows; table_value ARRAY NAME: the value of NAME
# (fails when absent). setting_names / setting_groups NAME read SETTING_TABLE with them.
table_keys() {
  local -n rows_=$1
  local row names=()
  for row in "${rows_[@]}"; do names+=("${row%%:*}"); done
  echo "${names[*]}"
}
table_value() {
  local -n rows_=$1
  local row
  for row in "${rows_[@]}"; do
    if [[ ${row%%:*} == "$2" ]]; then echo "${row#*: }"; return 0; fi
  done
  return 1
}
setting_names() { table_keys SETTING_TABLE; }
setting_groups() { table_value SETTING_TABLE "$1"; }

# setting NAME: SETTING, SLICES (groups, --slice_list order), K, STEPS, SEED_LIST, DATA, OUT, COMMON
# (the paper's common flags, without --num_ckpts), and the per-setting numbers of the paper's scripts. The paper scripted only arxiv/SE, arxiv/book/SE and full; the other two-
# and three-group settings reuse the k=2 and k=3 rows unchanged (our choice).
setting() {
  SETTING="$1"
  local groups
  if ! groups="$(setting_groups "$SETTING")"; then
    echo "unknown setting $SETTING (one of: $(setting_names))" >&2
    return 2
  fi
  read -r -a SLICES <<< "$groups"
  K=${#SLICES[@]}
  DATA="${SLIMPAJAMA_DIR:?set SLIMPAJAMA_DIR to prepared shards or raw SlimPajama}"
  OUT="${OUTPUT_DIR:-./output}/$SETTING"
  if [[ $SETTING == full ]]; then
    STEPS=40000; SEED_LIST="${SEEDS:-0 1 2}"
    STRATIFIED_CKPTS=5; FINAL_CKPTS=5; SWEEP_CKPTS=1; ONEHOT_CKPTS=2; SKILLIT_UPDATE=400
    DOREMI_PROXY=(--max_steps 40000 --batch_size 8 --num_ckpts 5)
    DOGE_PROXY=(--batch_size 4 --doge_val_batch_size 4 --doge_mu 0.1 --eval_batch_size 8 --num_ckpts 4)
    # ADO: the reference's schedule (its runs: 60000 steps), kept for the 40000-step runs
    ADO_RUN=(--ado_ignore_steps 1000 --ado_start_step 1000 --ado_update_steps 1000)
  else
    STEPS=5000; SEED_LIST="${SEEDS:-0 1 2 3 4}"
    FINAL_CKPTS=20; SWEEP_CKPTS=20; ONEHOT_CKPTS=40; SKILLIT_UPDATE=500
    # The paper's proxy: micro-batches of 4, accumulated 2 per update, over 10000 micro-batch
    # "steps" of its counter (which dropped a micro-batch per update; docs/deviations.md). With correct
    # accumulation that is 5000 updates of 8 sequences in 2 micro-batches of 4: the same tokens,
    # micro-batch size and schedule as every other 5000-step run.
    DOREMI_PROXY=(--max_steps 5000 --batch_size 8 --gradient_accumulation_steps 2 --num_ckpts 40)
    # ADO on 5000 steps (our choice; the reference's 1000-step schedule would fit 4 times): the first fit at
    # step 500 on 25 points (every 10th step after the first 250), then every 250 steps
    ADO_RUN=(--ado_ignore_steps 250 --ado_start_step 500 --ado_update_steps 250)
    if [[ $K == 2 ]]; then
      STRATIFIED_CKPTS=40
      DOGE_PROXY=(--batch_size 6 --doge_val_batch_size 2 --doge_mu 0.01 --eval_batch_size 8 --num_ckpts 20)
    else
      STRATIFIED_CKPTS=20
      DOGE_PROXY=(--batch_size 4 --doge_val_batch_size 4 --doge_mu 0.01 --eval_batch_size 8 --num_ckpts 20)
    fi
  fi
  # Aioli: the paper's k=2 row (arxiv/stackexchange script; github/c4 and book/stackexchange had no
  # paper script and reuse it unchanged, our choice), k=3 row (arxiv/book/stackexchange script;
  # cc/github/wikipedia reuses it) and full row. AIOLI_LP: LearnParams (rounds, steps per probe) and
  # the exponentiated-gradient step eta; AIOLI_RUN: flags of the full setting's Aioli runs only.
  AIOLI_RUN=()
  if [[ $SETTING == full ]]; then
    AIOLI_LP=(--lp_rounds 2 --lp_steps 10 --eta 1); AIOLI_EMA=0.1; AIOLI_UPDATE=200; AIOLI_OHF=0.75
    AIOLI_RUN=(--eval_batch_size 16 --save_model)
  elif [[ $K == 2 ]]; then
    AIOLI_LP=(--lp_rounds 4 --lp_steps 4 --eta 0.2); AIOLI_EMA=0.1; AIOLI_UPDATE=250; AIOLI_OHF=0.625
  else
    AIOLI_LP=(--lp_rounds 4 --lp_steps 6 --eta 0.1); AIOLI_EMA=0.5; AIOLI_UPDATE=250; AIOLI_OHF=0.5
  fi
  COMMON=(
    --task_name slimpj --model EleutherAI/pythia-160m --checkpoint 0 --use_flash_attention
    --train_data_dir "$DATA" --val_data_dir "$DATA" --slice_list "${SLICES[@]}"
    --batch_size 8 --context_length 2048 --lr 0.0005 --lr_scheduler linear_warmup_cosine
    --warmup_steps 500 --max_steps "$STEPS"
  )
}

# train DIR NAME FLAGS...: one main.py run written to DIR/NAME (idempotent, see above). FLAGS must end
# with the script's "$@" so that the user's flags come last.
train() {
  local dir="$1" name="$2"
  shift 2
  local run="$dir/$name" resume=()
  if [[ -f "$run/results.json" ]]; then
    log "$run finished earlier: reusing it"
    return 0
  fi
  if compgen -G "$run/checkpoints/step_*" > /dev/null; then
    log "$run was interrupted: resuming it"
    resume=(--resume)
  elif [[ -e "$run" ]]; then
    log "$run was interrupted before its first checkpoint: starting it again"
    rm -rf -- "$run"
  fi
  mkdir -p "$dir"
  if [[ -n "${RUN_QUEUE:-}" ]]; then  # inside batch_begin/batch_end: written down, run by batch_end
    log "queue $run"
    printf '%q ' "$PY" "$MAIN" --output_dir "$dir" --run_name "$name" ${resume[@]+"${resume[@]}"} "$@" >> "$RUN_QUEUE"
    printf '\n' >> "$RUN_QUEUE"
    return 0
  fi
  log "run $run"
  "$PY" "$MAIN" --output_dir "$dir" --run_name "$name" ${resume[@]+"${resume[@]}"} "$@"
}

# batch_begin NAME ... batch_end: the train calls between them are independent runs; with RUNNER set
# they are written to $OUT/NAME.commands.txt and run together by scripts/run_many.py at batch_end.
batch_begin() {
  [[ -z "${RUNNER:-}" ]] && return 0
  mkdir -p "$OUT"
  RUN_QUEUE="$OUT/$1.commands.txt"
  : > "$RUN_QUEUE"
}

batch_end() {
  [[ -z "${RUN_QUEUE:-}" ]] && return 0
  local queue="$RUN_QUEUE" mode rest
  RUN_QUEUE=
  if [[ ! -s "$queue" ]]; then
    return 0
  fi
  IFS=: read -r mode rest <<< "$RUNNER"
  local -a flags
  case "$mode" in
    local) flags=(--executor local --slots "${rest%%:*}"); [[ "$rest" == *:gpus ]] && flags+=(--gpus) ;;
    slurm) flags=(--executor slurm --timeout_min "${SLURM_TIMEOUT_MIN:-1440}")
           [[ -n "${SLURM_PARTITION:-}" ]] && flags+=(--partition "$SLURM_PARTITION")
           [[ -n "${SLURM_GPUS_PER_JOB:-}" ]] && flags+=(--gpus_per_job "$SLURM_GPUS_PER_JOB") ;;
    submitit-local) flags=(--executor submitit-local) ;;
    *) echo "error: RUNNER=$RUNNER: use local:N, local:N:gpus, slurm or submitit-local" >&2; exit 2 ;;
  esac
  log "run $(grep -c . "$queue") command(s) of $queue with $RUNNER"
  "$PY" "$LIB_DIR/../run_many.py" "$queue" "${flags[@]}"
}

# final_runs METHOD RUN FLAGS...: the stage after a proxy or online run: per seed, the static run
# METHOD_final_seed<S> (custom_name METHOD_final, FINAL_CKPTS checkpoints) on the averaged weights that
# RUN_seed<S> wrote to METHOD.json (DoReMi, DoGE, ODM, ADO).
final_runs() {
  local method="$1" run="$2" seed
  shift 2
  batch_begin "${method}_final"
  for seed in $SEED_LIST; do
    need "$OUT/${run}_seed$seed/$method.json" "the learned weights of $run"
    train "$OUT" "${method}_final_seed$seed" "${COMMON[@]}" --sample_rule mixture \
      --proportions_file "$OUT/${run}_seed$seed/$method.json" --num_ckpts "$FINAL_CKPTS" \
      --custom_name "${method}_final" --selection_seed "$seed" "$@"
  done
  batch_end
}

# fit SUBCOMMAND FLAGS...: the offline fitting CLI.
fit() {
  log "mixing_law_fitting.py $1"
  "$PY" "$FIT" "$@"
}

# stratified SEED FLAGS...: the uniform-mixture run of a seed, saved with --save_model. It is the
# stratified baseline, DoReMi's reference model and the uniform point of the sweeps, so it runs once.
stratified() {
  local seed="$1"
  shift
  train "$OUT" "stratified_seed$seed" "${COMMON[@]}" --sample_rule stratified --num_ckpts "$STRATIFIED_CKPTS" \
    --save_model --selection_seed "$seed" "$@"
}

# mixtures SEED FILE: the sweep's mixtures, one comma-separated line each, in FILE (.txt; a .json list
# beside it). k=2: the 0.1 grid (11 points; SWEEP_GRID changes the step); k>=3: a seeded Dirichlet
# cover of SWEEP_POINTS points (default 10, the paper's "10 extra runs"; alpha 1.5 as in the paper).
mixtures() {
  local seed="$1" file="$2"
  [[ -s "$file" ]] && return 0
  mkdir -p "$(dirname "$file")"
  if [[ $K == 2 ]]; then
    fit cover --k 2 --grid "${SWEEP_GRID:-0.1}" --output "${file%.txt}.json" > /dev/null
  else
    fit cover --k "$K" --n "${SWEEP_POINTS:-10}" --seed "$seed" --output "${file%.txt}.json" > /dev/null
  fi
}

# is_uniform "0.5,0.5": true when every weight of the mixture is the same (that point is the stratified run)
is_uniform() {
  local -a w
  IFS=, read -r -a w <<< "$1"
  local x
  for x in "${w[@]}"; do
    awk -v a="$x" -v b="${w[0]}" 'BEGIN { exit !((a - b) < 1e-6 && (b - a) < 1e-6) }' || return 1
  done
}

# sweep SEED FLAGS...: one static run per mixture of the seed's sweep in $OUT/sweep_seed$SEED, plus the
# stratified run (the uniform point, run once instead of twice). Sets SWEEP_DIRS to what the fits read.
sweep() {
  local seed="$1"
  shift
  stratified "$seed" "$@"
  local dir="$OUT/sweep_seed$seed" file i=0 line
  file="$dir/mixtures.txt"
  mixtures "$seed" "$file"
  batch_begin "sweep_seed$seed"
  while IFS= read -r line; do
    [[ -z "$line" ]] && continue
    i=$((i + 1))
    if is_uniform "$line"; then
      log "sweep point $line is the stratified run"
      continue
    fi
    local -a weights
    read -r -a weights <<< "${line//,/ }"
    train "$dir" "$(printf 'mix%02d' "$i")" "${COMMON[@]}" --sample_rule mixture --proportions "${weights[@]}" \
      --num_ckpts "$SWEEP_CKPTS" --selection_seed "$seed" "$@" < /dev/null
  done < "$file"
  batch_end
  SWEEP_DIRS=("$dir" "$OUT/stratified_seed$seed")
}

# onehot I: the mixture with all weight on group I (0-based), as K space-separated numbers
onehot() {
  local j out=()
  for ((j = 0; j < K; j++)); do
    if ((j == $1)); then out+=(1); else out+=(0); fi
  done
  echo "${out[@]}"
}

# need FILE WHAT: stop with a clear message when a previous stage's output is missing
need() {
  [[ -e "$1" ]] && return 0
  echo "error: $1 is missing ($2)" >&2
  exit 2
}

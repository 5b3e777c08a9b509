"""Build a run from its RunConfig: data, mixture, method, model, optimizer, schedule, sampler, evaluator,
run directory and the Trainer; restore state for --resume / --resume_model_path."""
import contextlib
import json
import os
import platform
import warnings

import torch
import transformers

from data.bundle import validation_batch
from errors import UsageError
from methods import build_method, method_class
from trainer import checkpoint as ckpt
from trainer import resume
from trainer.config import RunConfig, pick_device, run_identity
from trainer.distributed import Dist, from_environment
from trainer.data_setup import build_data
from trainer.evaluation import Evaluator, to_device
from trainer.loop import Trainer
from trainer.mixture import initial_weights
from trainer.models import build_model, choose_attention, flops_per_token, load_frozen_model, peak_tflops
from trainer.optim import build_optimizer, build_scheduler
from trainer.outputs import start_wandb
from trainer.run_dir import FollowerRunDir, OutputOptions, RunDir
from trainer.sharding import shard_model


def numerics(mode: str, device):
    """(parameter dtype, autocast factory) of a resolved --precision mode."""
    if mode == "bf16-autocast":
        return torch.float32, lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    dtype = torch.bfloat16 if mode == "bf16-pure" else torch.float32
    return dtype, contextlib.nullcontext


def parent_checkpoint(path):
    """--resume_model_path: a run directory (its latest checkpoint) or a checkpoint directory."""
    if not os.path.exists(path):
        raise UsageError(f"--resume_model_path {path}: no such directory")
    parent_run = RunDir(path)
    found = parent_run.latest_checkpoint() if os.path.isdir(parent_run.checkpoints) else (
        path if ckpt.is_valid(path) else None)
    if found is None:
        raise UsageError(f"--resume_model_path {path}: no valid checkpoint (run the parent with --break_steps)")
    with open(os.path.join(found, "state.json")) as fh:
        return found, int(json.load(fh)["step"])


def run_config(cfg: RunConfig, groups, weights, total_steps, data_info, parent, world_size=1) -> dict:
    """What config.json records: every flag as resolved, plus what the run derived from them."""
    config = dict(cfg.flags)
    config.update(identity=run_identity(cfg, groups, weights), groups=groups, world_size=world_size,
                  initial_weights=dict(zip(groups, weights.tolist())), total_steps=total_steps, data=data_info,
                  parent={"path": parent[0], "step": parent[1]} if parent else None,
                  versions={"torch": torch.__version__, "transformers": transformers.__version__,
                            "python": platform.python_version()})
    return config


def saved_model_run(out: OutputOptions, config):
    """--use_saved_model: the newest run of this configuration that saved its model (a RunDir, locked),
    if any."""
    if not out.use_saved_model:
        return None
    try:
        run = RunDir.open(out.output_dir, config, out.run_name, "resume")
    except UsageError:
        return None
    if run.has_saved_model():
        return run
    run.release()
    return None


def build(cfg: RunConfig):
    """Everything needed to run; returns (trainer, config, evaluate_only). Opens the run directory (creates
    it, or restores its latest checkpoint on --resume); every UsageError comes before anything is written.
    evaluate_only: --use_saved_model found a saved model of this configuration (the trainer holds it)."""
    train, out = cfg.train, cfg.output
    if train.num_threads:
        torch.set_num_threads(train.num_threads)
    dist = from_environment()
    check_distributed(cfg, dist)  # before joining: a refusal needs no other rank
    dist.join()
    device = pick_device(train.device, dist.local_rank)
    if device.type == "cuda":  # TF32 tensor cores for the fp32 matmuls that remain (bf16 runs use bf16 ones)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    dtype, autocast = numerics(cfg.model.precision, device)
    data = build_data(cfg)
    groups = data.groups
    weights = initial_weights(cfg.mixture, groups)
    parent = parent_checkpoint(out.resume_model_path) if out.resume_model_path else None
    total_steps = parent[1] + out.remaining_steps if parent else train.max_steps * train.n_epochs
    if out.break_steps is not None and out.break_steps > total_steps:
        raise UsageError(f"--break_steps {out.break_steps} is after the last step ({total_steps})")
    method = build_method(cfg.method, groups, cfg.method_options, total_steps, cfg.run_facts, initial_weights=weights)

    config = run_config(cfg, groups, weights, total_steps, data.info, parent, dist.world)
    run, evaluate_only = open_run_dir(out, config, dist)
    try:
        return _build_in(run, cfg, config, data, method, weights, parent, total_steps, device, dtype, autocast,
                         evaluate_only, dist)
    except BaseException:
        run.abandon()  # refused (or interrupted) before training: the folder is as it was
        raise


def check_distributed(cfg: RunConfig, dist: Dist) -> None:
    """What a torchrun job needs beyond one process: a global batch that splits evenly over the ranks and
    their micro-batches; --fsdp only under torchrun, with a method that leaves the gradients to autograd."""
    if cfg.model.fsdp and not dist.active:
        raise UsageError("--fsdp shards the model over torchrun's processes; launch with torchrun "
                         "--nproc_per_node N (N >= 2), or drop --fsdp for one process")
    if cfg.model.fsdp and method_class(cfg.method).writes_gradients:
        raise UsageError(f"--fsdp: {cfg.method} writes per-group gradients of whole parameters itself, which "
                         "sharded parameters do not have; run it without --fsdp (DDP)")
    if not dist.active:
        return
    train = cfg.train
    if train.batch_size % (dist.world * train.gradient_accumulation_steps):
        raise UsageError(f"--batch_size {train.batch_size} (the global batch) must split evenly over {dist.world} "
                         f"ranks x --gradient_accumulation_steps {train.gradient_accumulation_steps}; give a "
                         f"multiple of {dist.world * train.gradient_accumulation_steps}")


def open_run_dir(out: OutputOptions, config, dist: Dist):
    """(RunDir, evaluate_only): rank 0 finds and locks the folder and tells the others which it is (or
    the one-line refusal that ends them all)."""
    if not dist.main:
        kind, value, evaluate_only = dist.broadcast(None)
        if kind == "error":
            raise UsageError(value)
        return FollowerRunDir(value), evaluate_only
    try:
        saved = saved_model_run(out, config)  # --use_saved_model: evaluate it, train nothing
        run = saved or RunDir.open(out.output_dir, config, out.run_name, out.mode)
    except UsageError as err:
        dist.broadcast(("error", str(err), False))
        raise
    dist.broadcast(("ok", run.path, saved is not None))
    return run, saved is not None


def _build_in(run, cfg, config, data, method, weights, parent, total_steps, device, dtype, autocast,
              evaluate_only, dist):
    """The rest of build, once the run directory is found and locked."""
    train, optim, out = cfg.train, cfg.optim, cfg.output
    groups = data.groups
    config["run_name"] = run.name
    stored = run.read_config() if out.resume and run.has_config() else None
    allowed = resume.check(stored, config, run.path) if stored else {}
    run.clean_leftovers()
    latest = run.latest_checkpoint() if stored else None
    if out.resume and latest is None and dist.main:
        warnings.warn(f"{run.path} has no checkpoint yet (it stopped before its first one): starting it again "
                      "from step 0", stacklevel=2)

    torch.manual_seed(train.selection_seed)
    if evaluate_only:
        model = load_frozen_model(run.path, device, dtype)
    else:
        attn = choose_attention(cfg.model.use_flash_attention, device)
        model = build_model(cfg.model.model_name, cfg.model.checkpoint, data_vocab_size=data.vocab_size,
                            context_length=cfg.data.context_length, attn_implementation=attn, dtype=dtype).to(device)
        if cfg.model.fsdp:  # before the optimizer, which must hold the sharded parameters
            shard_model(model)
    optimizer = build_optimizer(model, optim.lr)
    # The schedule spans max_steps (a child run continues its parent's schedule).
    schedule_steps = train.max_steps * train.n_epochs
    scheduler = build_scheduler(optimizer, optim.lr_scheduler, peak=optim.lr, warmup=optim.warmup_steps,
                                total=schedule_steps, end_lr=optim.end_lr)
    sampler = data.make_sampler(weights)
    evaluator = Evaluator(groups, data.eval_source, train.eval_batch_size, device, autocast,
                          cfg.data.max_eval_samples, cfg.data.max_test_samples, dist=dist)
    services = {"val_batch": _val_batch_fn(evaluator, groups, device, train.selection_seed),
                "load_model": lambda path: load_frozen_model(path, device)}
    every = max(1, total_steps // train.num_ckpts)
    # wandb starts with the first metrics line, so that a run refused before training starts none
    metrics = run.metrics_log(None if evaluate_only else (lambda: start_wandb(out, run.name, config)))
    trainer = Trainer(model=model, optimizer=optimizer, scheduler=scheduler, sampler=sampler, method=method,
                      evaluator=evaluator, groups=groups, device=device, autocast=autocast,
                      total_steps=total_steps, batch_size=train.batch_size, context_length=cfg.data.context_length,
                      run_dir=run, metrics=metrics, grad_accum=train.gradient_accumulation_steps,
                      eval_every=every, checkpoint_every=out.checkpoint_every or every,
                      keep_checkpoints=out.keep_checkpoints, break_steps=out.break_steps,
                      log_every=out.log_every, progress=not out.no_progress, seed=train.selection_seed,
                      run_name=run.name, services=services, dist=dist,
                      flops_per_token=flops_per_token(model.config, cfg.data.context_length),
                      tokenizer_file=data.tokenizer_file)
    peak = peak_tflops(device, cfg.model.peak_tflops)
    trainer.peak_flops = peak * 1e12 * dist.world if peak else None
    if evaluate_only:
        return trainer, config, True
    if parent:
        trainer.restore(parent[0], restore_method=False)  # the child keeps its own mixture and method
        trainer.weights_trajectory = []
    if latest:
        trainer.restore(latest)
        config = resume.record(stored, config, allowed, trainer.step)
        run.create(config)
        print(f"resuming {run.path} from step {trainer.step}", flush=True)
    else:
        run.reset()  # a new run; or --overwrite, or a run that never reached a checkpoint: start afresh
        run.create(config)  # the first file of a new run, once nothing can be refused any more
    metrics.truncate_after(trainer.step)
    if dist.active and not cfg.model.fsdp:  # wrapped last: DDP starts from rank 0's weights, which every rank holds
        trainer.train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.model.compile:  # the training forward/backward only: checkpoints keep the plain module's names
        trainer.train_model = torch.compile(trainer.train_model if trainer.train_model is not None else model)
    return trainer, config, False


def _val_batch_fn(evaluator, groups, device, seed):
    """DoGE's validation target: data.bundle.validation_batch over the run's validation rows, on the device."""
    def val_batch(n, step=0):
        sources = [evaluator.windows("val", g, evaluator.default_max_windows) for g in groups]
        return to_device(validation_batch(sources, n, seed, step), device)

    return val_batch

"""Build a run from resolved arguments: data, mixture, method, model, optimizer, schedule, sampler,
evaluator, run directory and the Trainer; restore state for --resume / --resume_model_path."""
import contextlib
import json
import os
import platform

import numpy as np
import torch

from data.bundle import validation_batch
from errors import UsageError
from methods import build_method
from methods.base import normalize_weights
from trainer import checkpoint as ckpt
from trainer.data_setup import build_data
from trainer.config import run_identity
from trainer.evaluation import Evaluator
from trainer.loop import Trainer
from trainer.models import build_model, choose_attention, load_frozen_model
from trainer.optim import build_optimizer, build_scheduler
from trainer.outputs import start_wandb
from trainer.run_dir import RunDir

_WEIGHT_KEYS = ("proportions", "weights", "average_weights", "optimal_mixture", "final_weights")


def load_proportions_file(path, groups):
    """A mixture from JSON: a list in group order, {group: weight}, or a learned-weights file."""
    try:
        with open(path) as fh:
            obj = json.load(fh)
    except OSError as err:
        raise UsageError(f"--proportions_file {path}: cannot read it ({err.strerror})") from None
    except ValueError as err:
        raise UsageError(f"--proportions_file {path}: not valid JSON ({err})") from None
    if isinstance(obj, dict):
        for key in _WEIGHT_KEYS:
            if key in obj:
                obj = obj[key]
                break
    if isinstance(obj, dict):
        missing = [g for g in groups if g not in obj]
        if missing:
            raise UsageError(f"--proportions_file {path}: no weight for group(s) {', '.join(missing)}; it has "
                             f"{', '.join(map(str, obj))}")
        obj = [obj[g] for g in groups]
    if not isinstance(obj, list):
        raise UsageError(f"--proportions_file {path}: expected a list of weights or {{group: weight}}")
    return normalize_weights(obj, len(groups), f"--proportions_file {path}")


def initial_weights(args, groups):
    if args.proportions_file:
        return load_proportions_file(args.proportions_file, groups)
    if args.sample_rule == "mixture" and args.proportions is not None:
        return normalize_weights(args.proportions, len(groups), "--proportions")
    return np.full(len(groups), 1.0 / len(groups))


def pick_device(args):
    if args.device:
        try:
            device = torch.device(args.device)
        except RuntimeError:
            raise UsageError(f"--device {args.device}: not a device name (cpu, cuda, cuda:1 ...)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"--device {args.device}: CUDA is not available on this machine; use --device cpu")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def precision(args, device):
    """(parameter dtype, autocast factory). Default fp32 on CPU; bf16 autocast with fp32 master
    weights on GPU with --use_flash_attention; bf16-pure (the paper's) only when asked for."""
    mode = args.precision or ("bf16-autocast" if args.use_flash_attention and device.type == "cuda" else "fp32")
    args.precision = mode
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


def run_config(args, groups, weights, total_steps, data_info, parent):
    import transformers

    config = {k: v for k, v in vars(args).items()}
    config.update(identity=run_identity(args, groups, weights), groups=groups, initial_weights=dict(zip(groups, weights.tolist())), total_steps=total_steps,
                  data=data_info,
                  parent={"path": parent[0], "step": parent[1]} if parent else None,
                  versions={"torch": torch.__version__, "transformers": transformers.__version__,
                            "python": platform.python_version()})
    return config


def saved_model_run(args, config):
    """--use_saved_model: the newest run of this configuration that saved its model (a RunDir), if any."""
    if not args.use_saved_model:
        return None
    try:
        run = RunDir.resolve(args.output_dir, config, args.run_name, resume=False, must_exist=True)
    except UsageError:
        return None
    return run if run.has_saved_model() else None


def build(args):
    """Everything needed to run; returns (trainer, config, evaluate_only). Opens the run directory (creates
    it, or restores its latest checkpoint on --resume); every UsageError comes before anything is written.
    evaluate_only: --use_saved_model found a saved model of this configuration (the trainer holds it)."""
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    device = pick_device(args)
    dtype, autocast = precision(args, device)
    data = build_data(args)
    groups = data.groups
    weights = initial_weights(args, groups)
    parent = parent_checkpoint(args.resume_model_path) if args.resume_model_path else None
    total_steps = parent[1] + args.remaining_steps if parent else args.max_steps * args.n_epochs
    if args.break_steps is not None and args.break_steps > total_steps:
        raise UsageError(f"--break_steps {args.break_steps} is after the last step ({total_steps})")
    method = build_method(args.method, groups, args, total_steps, initial_weights=weights)

    config = run_config(args, groups, weights, total_steps, data.info, parent)
    saved = saved_model_run(args, config)  # --use_saved_model: evaluate it, train nothing
    run = saved or RunDir.resolve(args.output_dir, config, args.run_name, args.resume)
    config["run_name"] = run.name
    latest = run.latest_checkpoint() if args.resume and not saved else None
    if args.resume and not saved and latest is None:
        raise UsageError(f"--resume: {run.path} has no valid checkpoint to continue from; run without --resume")

    torch.manual_seed(args.selection_seed)
    if saved:
        model = load_frozen_model(saved.path, device, dtype)
    else:
        attn = choose_attention(args.use_flash_attention, device)
        model = build_model(args.model_name, args.checkpoint, data_vocab_size=data.vocab_size,
                            context_length=args.context_length, attn_implementation=attn, dtype=dtype).to(device)
    optimizer = build_optimizer(model, args.lr)
    # The schedule spans max_steps (a child run continues its parent's schedule).
    schedule_steps = args.max_steps * args.n_epochs
    scheduler = build_scheduler(optimizer, args.lr_scheduler, peak=args.lr, warmup=args.warmup_steps,
                                total=schedule_steps, end_lr=args.end_lr)
    sampler = data.make_sampler(weights)
    evaluator = Evaluator(groups, data.eval_source, args.eval_batch_size, device, autocast, args.max_eval_samples,
                          args.max_test_samples)
    services = {"val_batch": _val_batch_fn(evaluator, groups, device, args.selection_seed),
                "load_model": lambda path: load_frozen_model(path, device)}
    every = max(1, total_steps // args.num_ckpts)
    # wandb starts with the first metrics line, so that a run refused before training starts none
    metrics = run.metrics_log(None if saved else (lambda: start_wandb(args, run.name, config)))
    trainer = Trainer(model=model, optimizer=optimizer, scheduler=scheduler, sampler=sampler, method=method,
                      evaluator=evaluator, groups=groups, device=device, autocast=autocast,
                      total_steps=total_steps, batch_size=args.batch_size, context_length=args.context_length,
                      run_dir=run, metrics=metrics, grad_accum=args.gradient_accumulation_steps,
                      eval_every=every, checkpoint_every=args.checkpoint_every or every,
                      keep_checkpoints=args.keep_checkpoints, break_steps=args.break_steps,
                      log_every=args.log_every, progress=not args.no_progress, seed=args.selection_seed,
                      run_name=run.name, services=services)
    if saved:
        return trainer, config, True
    if parent:
        trainer.restore(parent[0], restore_method=False)  # the child keeps its own mixture and method
        trainer.weights_trajectory = []
    if latest:
        trainer.restore(latest)
        print(f"resuming {run.path} from step {trainer.step}", flush=True)
    else:
        run.create(config)  # the first file of a new run, once nothing can be refused any more
    metrics.truncate_after(trainer.step)
    return trainer, config, False


def _val_batch_fn(evaluator, groups, device, seed):
    """DoGE's validation target: data.bundle.validation_batch over the run's validation rows, on the device."""
    def val_batch(n, step=0):
        sources = [evaluator.windows("val", g, evaluator.default_max_windows) for g in groups]
        batch = validation_batch(sources, n, seed, step)
        return {key: torch.from_numpy(value).to(device) for key, value in batch.items()}

    return val_batch

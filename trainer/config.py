"""Resolve and validate the command line into an immutable RunConfig before anything is built.

Defaults that depend on the situation (the demo, the device, the method) are filled in here, only for
flags the user did not give; every inconsistency is a UsageError naming the flag and the fix. The
RunConfig's sections are the components' option dataclasses; nothing after this module reads argparse.
"""
import argparse
import glob
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

import torch

from data.demo import CORPUS_DIR
from data.instructions import InstructionOptions
from errors import UsageError
from methods import method_class
from methods.base import RunFacts
from options import from_namespace, non_defaults
from trainer.args import METHOD_FLAGS, build_parser
from trainer.data_setup import DataOptions
from trainer.loop import TrainOptions
from trainer.mixture import MixtureOptions
from trainer.models import ModelOptions, is_tiny
from trainer.optim import OptimOptions
from trainer.run_dir import OutputOptions

# Flags that change where or how a run is logged, not what it computes: not part of its identity.
NOT_IN_IDENTITY = {"output_dir", "run_name", "resume", "no_progress", "wandb_project", "wandb_entity",
                   "wandb_mode", "num_threads", "keep_checkpoints", "checkpoint_every", "log_every", "overwrite",
                   "compile", "fsdp", "peak_tflops",
                   "use_saved_model", "save_model", "num_proc", "instruction_cache_dir", "method"}
# RunConfig's general sections and their option classes
SECTIONS = {"data": DataOptions, "instruction": InstructionOptions, "model": ModelOptions, "train": TrainOptions,
            "optim": OptimOptions, "mixture": MixtureOptions, "output": OutputOptions}

# Used when no data flag is given: the embedded demo corpus and a tiny CPU model, sized so that
# `python main.py` and `python main.py --aioli` finish in a few minutes on a laptop CPU.
DEMO_DEFAULTS = dict(
    model_name="tiny", checkpoint=0, context_length=256, batch_size=8, eval_batch_size=16, max_steps=300,
    lr=2e-3, lr_scheduler="linear_warmup_cosine", warmup_steps=30, end_lr=2e-4, num_ckpts=5,
    max_eval_samples=32,
)
DEMO_METHOD_DEFAULTS = {
    # Rounds of 90 steps after the 30-step warmup (at 30, 120, 210); repeated probes (count, length
    # and share: demo_probe_settings), enough for the trend-aware fit to have residual degrees of
    # freedom for its noise gate. The quality benchmark (scripts/benchmarks/bench_quality.py) measures
    # the same recipe on shorter runs.
    "aioli": dict(update_steps=90, eta=1.0, aioli_normalize_A=True, lp_eval_samples=16),
    "skillit": dict(update_steps=100, eta=0.2),
    # ADO's reference schedule (fits from step 1000 of 60000, every 1000 steps) scaled to the 300-step demo:
    # the first fit at step 60 has 5 points (every 10th step after the first 10), then every 30 steps.
    "ado": dict(ado_ignore_steps=10, ado_start_step=60, ado_update_steps=30),
}
GENERAL_DEFAULTS = dict(model_name="EleutherAI/pythia-160m", context_length=1024, batch_size=4)


def demo_probe_settings(k: int):
    """(one_hot_factor, lp_rounds, lp_steps) of the demo's Aioli probes for k groups: the paper's shares
    for k = 2 (0.625) and k = 3 (0.5), twice the uniform share above; 1-step probes, repeated 4 times up
    to k = 3 (measured steadier than 2 x 2 steps on the quality benchmark) and twice above, so that the
    LearnParams stay near 10-15% of a round. The quality benchmark uses the same rule."""
    return (0.625 if k == 2 else min(0.5, 2.0 / max(k, 1))), (4 if k <= 3 else 2), 1


def demo_group_count(slice_list) -> int:
    return len(slice_list) if slice_list else len(glob.glob(f"{CORPUS_DIR}/*.jsonl.zst"))


def given_flags(argv) -> set:
    """Names of the options that appear on the command line (so defaults never mask a user's choice)."""
    parser = build_parser()
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def method_name(args) -> str:
    chosen = [flag for flag in METHOD_FLAGS if getattr(args, flag)]
    if len(chosen) > 1:
        raise UsageError(f"--{' and --'.join(chosen)} are mutually exclusive; pick one method")
    if args.method and chosen and args.method != chosen[0]:
        raise UsageError(f"--method {args.method} contradicts --{chosen[0]}; give one of them")
    return args.method or (chosen[0] if chosen else "static")


@dataclass(frozen=True)
class RunConfig:
    """A resolved run: one immutable, typed section per component, the chosen method and its options, and
    `flags`, every flag by name as resolved (what config.json records and the run identity reads)."""

    data: DataOptions
    instruction: InstructionOptions
    model: ModelOptions
    train: TrainOptions
    optim: OptimOptions
    mixture: MixtureOptions
    output: OutputOptions
    method: str
    method_options: Any
    demo: bool
    run_facts: RunFacts  # what a method may know of the run besides its own options
    flags: Mapping


def resolve(argv) -> RunConfig:
    """Parse `argv`, apply the demo presets to flags the user did not give, validate; the RunConfig."""
    args = resolve_namespace(argv)
    sections = {name: from_namespace(cls, args) for name, cls in SECTIONS.items()}
    for section in sections.values():
        if hasattr(section, "check"):
            section.check()
    cfg = RunConfig(**sections, method=args.method,
                    method_options=from_namespace(method_class(args.method).Options, args), demo=args.demo,
                    run_facts=RunFacts.from_namespace(args), flags=MappingProxyType(dict(vars(args))))
    check_combination(cfg)
    return cfg


def resolve_namespace(argv):
    """Parse and resolve `argv` as an argparse Namespace (args.method and args.demo set)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = given_flags(argv)
    args.method = method_name(args)
    args.demo = args.train_data_dir is None and args.task_name == "slimpj"

    def fill(defaults):
        for key, value in defaults.items():
            if key not in given:
                setattr(args, key, value)

    if args.demo:
        fill(DEMO_DEFAULTS)
        fill(DEMO_METHOD_DEFAULTS.get(args.method, {}))
        if args.method == "aioli":
            probes = demo_probe_settings(demo_group_count(args.slice_list))
            for flag, value in zip(("one_hot_factor", "lp_rounds", "lp_steps"), probes):
                if flag not in given:
                    setattr(args, flag, value)
    for key, value in GENERAL_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if is_tiny(args.model_name) and args.checkpoint is None:
        args.checkpoint = 0  # the tiny configs only exist as from-scratch models
    derive_defaults(args)
    args.precision = precision_mode(args)
    return args


def derive_defaults(args):
    """Defaults that follow from other flags: the eval batch and the sample rule."""
    if args.eval_batch_size is None:
        args.eval_batch_size = args.batch_size
    if args.sample_rule is None:
        static_mix = args.proportions is not None or args.proportions_file is not None
        args.sample_rule = "mixture" if static_mix else "stratified"


def check_combination(cfg: "RunConfig"):
    """Checks that span sections (each section checks its own fields: their `check`)."""
    mix, out = cfg.mixture, cfg.output
    if mix.sample_rule == "mixture" and cfg.method == "static" and mix.proportions is None \
            and mix.proportions_file is None and out.resume_model_path is None:
        raise UsageError("--sample_rule mixture: give --proportions or --proportions_file (or use "
                         "--sample_rule stratified)")
    if out.resume_model_path and cfg.method != "static":
        raise UsageError(f"--resume_model_path with --{cfg.method}: children of a dynamic sweep are static runs "
                         "(--proportions or --proportions_file); the parent may use any method")


def run_identity(config: RunConfig, groups, initial_weights) -> dict:
    """What names a run (the hash in its automatic name): task, method, groups and initial mixture, plus
    every option of the general sections and of the chosen method whose value differs from its declared
    default (never another method's). Adding a flag or a method therefore never renames an existing run,
    and an unused flag never makes two identical runs look different."""
    identity = {"task_name": config.data.task_name, "method": config.method, "groups": list(groups),
                "initial_weights": [round(float(w), 12) for w in initial_weights]}
    for section in (*(getattr(config, name) for name in SECTIONS), config.method_options):
        identity.update({name: value for name, value in non_defaults(section).items()
                         if name not in NOT_IN_IDENTITY and name not in identity})
    return identity


def pick_device(device_flag, local_rank: int = 0):
    """The torch device of --device (default: cuda when available, this process's GPU under torchrun); a bad
    name is a UsageError."""
    if device_flag:
        try:
            device = torch.device(device_flag)
        except RuntimeError:
            raise UsageError(f"--device {device_flag}: not a device name (cpu, cuda, cuda:1 ...)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"--device {device_flag}: CUDA is not available on this machine; use --device cpu")
        return device
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def precision_mode(args) -> str:
    """--precision as resolved: fp32 on CPU by default; bf16 autocast with fp32 master weights on GPU with
    --use_flash_attention; bf16-pure (the paper's) only when asked for."""
    device = pick_device(args.device)
    return args.precision or ("bf16-autocast" if args.use_flash_attention and device.type == "cuda" else "fp32")

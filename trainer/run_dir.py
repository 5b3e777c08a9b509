"""The run directory: its name, its layout and every file the trainer writes into it (layout and fields:
docs/formats.md). The only place that knows the names of the files of a run.

    <output_dir>/<run name>/
        config.json  metrics.jsonl  results.json  <method artefacts>.json
        checkpoints/step_<N>/   model/ (--save_model)
"""
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Optional

from errors import UsageError
from options import option, require_positive
from trainer.outputs import MetricsLog, write_json

CONFIG, RESULTS, METRICS = "config.json", "results.json", "metrics.jsonl"
CHECKPOINTS, MODEL = "checkpoints", "model"


@dataclass(frozen=True)
class OutputOptions:
    """Where a run writes, how it checkpoints and resumes, and where it logs."""

    output_dir: str = option("./output/", "root of the run directories")
    run_name: Optional[str] = option(None, "default: a readable name from the config")
    custom_name: Optional[str] = option(None, "suffix of the run name (paper)")
    resume: bool = option(False, "continue the run from its latest checkpoint")
    checkpoint_every: Optional[int] = option(None, "steps between checkpoints (default: every evaluation)")
    keep_checkpoints: int = option(2, "checkpoints kept on disk")
    save_model: bool = option(False, "save the final model to <run>/model/")
    use_saved_model: bool = option(False, "if <run>/model/ exists, skip training and evaluate it")
    break_steps: Optional[int] = option(None, "at this step: evaluate val, save the full state, stop (parent of "
                                        "a dynamic sweep)")
    resume_model_path: Optional[str] = option(
        None, "start from a parent's --break_steps state (run dir or checkpoint dir) with this run's mixture")
    remaining_steps: Optional[int] = option(None, "steps to train after --resume_model_path")
    log_every: int = option(10, "steps between metrics.jsonl lines")
    wandb_project: Optional[str] = option(None, "log to wandb (off unless given)")
    wandb_entity: Optional[str] = option(None, "wandb entity (team or user)")
    wandb_mode: Optional[str] = option(None, "wandb mode", choices=("online", "offline", "disabled"))
    no_progress: bool = option(False, "no tqdm progress bar")

    def check(self):
        require_positive(self, "log_every", "remaining_steps")
        if self.resume_model_path and self.remaining_steps is None:
            raise UsageError("--resume_model_path needs --remaining_steps (steps to train after the parent's state)")
        if self.remaining_steps is not None and not self.resume_model_path:
            raise UsageError("--remaining_steps only applies with --resume_model_path")
        if self.checkpoint_every is not None and self.checkpoint_every <= 0:
            raise UsageError("--checkpoint_every: must be a positive number of steps")
        if self.resume and self.resume_model_path:
            raise UsageError("--resume continues this run; --resume_model_path starts a child of another run: "
                             "give only one")
        if self.break_steps is not None and self.break_steps <= 0:
            raise UsageError("--break_steps: must be a positive step number")


def run_base_name(config: dict) -> str:
    """Readable and unique per configuration: task-method-groups-seed-hash (never parsed back). The hash
    is of `config["identity"]` (trainer.config.run_identity: the flags the run uses, defaults omitted)."""
    groups = "+".join(config["groups"])
    if len(groups) > 60:
        groups = "+".join(config["groups"][:3]) + f"+{len(config['groups']) - 3}more"
    digest = hashlib.sha256(json.dumps(config["identity"], sort_keys=True, default=str).encode()).hexdigest()[:6]
    name = f"{config['task_name']}-{config['method']}-{groups}-seed{config['selection_seed']}-{digest}"
    if config.get("custom_name"):
        name += f"-{config['custom_name']}"
    return re.sub(r"[^A-Za-z0-9_.+=-]", "_", name)


def _has_content(path):
    return os.path.isdir(path) and bool(os.listdir(path))


def resolve_run_dir(output_dir: str, config: dict, explicit_name, resume: bool, must_exist=False) -> str:
    """New run: the first free directory among NAME, NAME-2, NAME-3 ... (an explicit --run_name must
    be free). Resume: the newest existing one."""
    if explicit_name:
        path = os.path.join(output_dir, explicit_name)
        if (resume or must_exist) and not _has_content(path):
            raise UsageError(f"--run_name {explicit_name}: nothing to continue in {path}; run without --resume first")
        if not (resume or must_exist) and _has_content(path):
            raise UsageError(f"--run_name {explicit_name}: {path} already holds a run; pass --resume to continue "
                             "it or choose another --run_name")
        return path
    base = run_base_name(config)
    names = [base]  # names[:-1] hold runs; names[-1] is the first free one
    while _has_content(os.path.join(output_dir, names[-1])):
        names.append(f"{base}-{len(names) + 1}")
    if resume or must_exist:
        if len(names) == 1:
            raise UsageError(f"--resume: no earlier run of this configuration in {output_dir} (looked for {base}); "
                             "run without --resume, or pass the --run_name of the run to continue")
        return os.path.join(output_dir, names[-2])
    return os.path.join(output_dir, names[-1])


class RunDir:
    """One run's folder. Paths are properties; writers are atomic (temporary file + rename)."""

    def __init__(self, path: str):
        self.path = path

    @classmethod
    def resolve(cls, output_dir: str, config: dict, explicit_name, resume: bool, must_exist=False) -> "RunDir":
        return cls(resolve_run_dir(output_dir, config, explicit_name, resume, must_exist))

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(self.path))

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def checkpoints(self) -> str:
        return self.file(CHECKPOINTS)

    @property
    def model_dir(self) -> str:
        return self.file(MODEL)

    def is_run(self) -> bool:
        """Whether the folder holds a finished or stopped run (config.json and results.json)."""
        return os.path.isfile(self.file(CONFIG)) and os.path.isfile(self.file(RESULTS))

    def has_saved_model(self) -> bool:
        return os.path.isfile(os.path.join(self.model_dir, "model.safetensors"))

    def latest_checkpoint(self):
        """The newest valid checkpoint directory, or None."""
        from trainer import checkpoint as ckpt  # torch: only where checkpoints are touched (analysis/ reads runs)

        return ckpt.latest_valid_checkpoint(self.checkpoints)

    # -- writing -------------------------------------------------------------------------------
    def create(self, config: dict) -> None:
        os.makedirs(self.path, exist_ok=True)
        write_json(self.file(CONFIG), config)

    def metrics_log(self, start_wandb=None) -> MetricsLog:
        return MetricsLog(self.file(METRICS), start_wandb)

    def save_checkpoint(self, step, model, optimizer, scheduler, state: dict, keep: int) -> str:
        from trainer import checkpoint as ckpt

        return ckpt.save_checkpoint(self.checkpoints, step, model, optimizer, scheduler, state, keep=keep)

    def write_artifacts(self, files: dict) -> None:
        """{file name: JSON object}: a method's artefacts."""
        for name, obj in files.items():
            write_json(self.file(name), obj)

    def write_results(self, results: dict) -> None:
        write_json(self.file(RESULTS), results)

    def save_model(self, model) -> None:
        model.save_pretrained(self.model_dir)

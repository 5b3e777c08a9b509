"""The run directory: its name, its layout and every file the trainer writes into it (layout and fields:
docs/formats.md). The only place that knows the names of the files of a run.

    <output_dir>/<run name>/
        config.json  metrics.jsonl  results.json  <method artefacts>.json
        checkpoints/step_<N>/   model/ (--save_model)
        .lock  .lock.owner            while a process works in it

One process at a time works in a run directory: it holds `.lock` (an OS file lock, released by the
kernel when the process dies, so a dead holder's lock is simply taken over); a second process gets one
line naming the holder. Guarantees on crashes and resume: docs/reliability.md.
"""
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from typing import Optional

from filelock import FileLock, Timeout

from errors import UsageError
from options import option, require_positive
from trainer.outputs import MetricsLog, write_json

CONFIG, RESULTS, METRICS = "config.json", "results.json", "metrics.jsonl"
CHECKPOINTS, MODEL = "checkpoints", "model"
LOCK, OWNER = ".lock", ".lock.owner"
_MODEL_TMP, _MODEL_OLD = ".model.tmp", ".model.old"  # --save_model's atomic replacement of model/


@dataclass(frozen=True)
class OutputOptions:
    """Where a run writes, how it checkpoints and resumes, and where it logs."""

    output_dir: str = option("./output/", "root of the run directories")
    run_name: Optional[str] = option(None, "default: a readable name from the config")
    custom_name: Optional[str] = option(None, "suffix of the run name (paper)")
    resume: bool = option(False, "continue the run from its latest checkpoint (from step 0 if it died before its "
                          "first one); flags that define the run must not change (docs/reliability.md)")
    overwrite: bool = option(False, "start the run again in its folder, deleting what it holds (with --run_name, "
                             "or the newest run of this configuration)")
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
        if self.resume and self.overwrite:
            raise UsageError("--resume continues the run, --overwrite starts it again: give only one")
        name = self.run_name
        if name is not None and (name in ("", ".", "..") or os.path.basename(name) != name
                                 or (os.altsep and os.altsep in name)):
            raise UsageError(f"--run_name {name!r}: must be a plain folder name (no '/', not '..'); the run "
                             "goes to --output_dir/<run_name>")
        if os.path.exists(self.output_dir) and not os.path.isdir(self.output_dir):
            raise UsageError(f"--output_dir {self.output_dir}: is a file, not a folder; give a folder (it is "
                             "created if missing)")

    @property
    def mode(self) -> str:
        """new, resume or overwrite: how the run directory is opened."""
        return "resume" if self.resume else "overwrite" if self.overwrite else "new"


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


class RunDir:
    """One run's folder. Paths are properties; writers are atomic (temporary file + rename). `open` finds
    the folder of a run and takes its lock; `release` (or the process's end) gives it back."""

    def __init__(self, path: str):
        self.path = path
        self._lock = None
        self._made = []  # folders this process created, deepest first (removed again if the run is refused)

    @classmethod
    def open(cls, output_dir: str, config: dict, explicit_name, mode: str) -> "RunDir":
        """The run's folder, locked by this process. mode: new (an explicit --run_name must hold no run; an
        automatic name takes the first free one of NAME, NAME-2, ...), resume or overwrite (an explicit
        --run_name, or the newest run of this configuration). A folder held by another process is
        refused, or skipped when looking for a free name."""
        if explicit_name:
            run = cls(os.path.join(output_dir, explicit_name))
            if mode == "resume" and not os.path.isdir(run.path):
                raise UsageError(f"--run_name {explicit_name}: nothing to continue in {run.path}; run without "
                                 "--resume first")
            run.claim_or_refuse()
            if mode == "new" and run.has_config():
                run.abandon()
                raise UsageError(f"--run_name {explicit_name}: {run.path} already holds a run; pass --resume to "
                                 "continue it, --overwrite to start it again, or choose another --run_name")
            return run
        base = run_base_name(config)

        def candidates():  # NAME, NAME-2, NAME-3 ...
            for i in itertools.count(1):
                yield cls(os.path.join(output_dir, base if i == 1 else f"{base}-{i}"))

        if mode != "new":
            existing = itertools.takewhile(lambda run: os.path.isdir(run.path), candidates())
            runs = [run for run in existing if run.has_config()]
            if runs:
                runs[-1].claim_or_refuse()
                return runs[-1]
            if mode == "resume":
                raise UsageError(f"--resume: no earlier run of this configuration in {output_dir} (looked for "
                                 f"{base}); run without --resume, or pass the --run_name of the run to continue")
        for run in candidates():
            if run.has_config() or not run.claim():
                continue  # a run, or a folder that another process is setting up
            if not run.has_config():
                return run
            run.release()  # it became a run between the two looks

    # -- the lock ---------------------------------------------------------------------------------
    def claim(self) -> bool:
        """Take the folder's lock without waiting (creating the folder if needed); False if another process
        holds it."""
        missing, folder = [], os.path.abspath(self.path)
        while not os.path.isdir(folder):
            missing.append(folder)
            folder = os.path.dirname(folder)
        os.makedirs(self.path, exist_ok=True)
        self._made = self._made or missing
        lock = FileLock(self.file(LOCK), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return False
        self._lock = lock
        write_json(self.file(OWNER), {"pid": os.getpid(), "host": socket.gethostname(),
                                      "since": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)})
        return True

    def claim_or_refuse(self) -> None:
        if not self.claim():
            raise UsageError(f"{self.path} is in use by another process ({self.holder()}); wait for it to finish, "
                             "or give this run another --run_name")

    def holder(self) -> str:
        try:
            with open(self.file(OWNER)) as fh:
                owner = json.load(fh)
            return f"pid {owner['pid']} on {owner['host']} since {owner['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "a process that is starting"

    def release(self) -> None:
        if self._lock is not None:
            _remove(self.file(OWNER))
            self._lock.release()
            self._lock = None

    def abandon(self) -> None:
        """Give the folder back after a refusal: release it, and remove it if this process created it and
        nothing else was written (the lock file goes while still held, so no other process is locked out)."""
        created = bool(self._made) and self._lock is not None
        if created:
            _remove(self.file(OWNER))
            _remove(self.file(LOCK))
        self.release()
        for folder in self._made if created else ():
            try:
                os.rmdir(folder)
            except OSError:
                break  # something else is in it now: leave it

    # -- layout -----------------------------------------------------------------------------------

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

    def has_config(self) -> bool:
        return os.path.isfile(self.file(CONFIG))

    def read_config(self) -> dict:
        with open(self.file(CONFIG)) as fh:
            return json.load(fh)

    def is_run(self) -> bool:
        """Whether the folder holds a finished or stopped run (config.json and results.json)."""
        return os.path.isfile(self.file(CONFIG)) and os.path.isfile(self.file(RESULTS))

    def has_saved_model(self) -> bool:
        return os.path.isfile(os.path.join(self.model_dir, "model.safetensors"))

    def latest_checkpoint(self):
        """The newest valid checkpoint directory, or None."""
        from trainer import checkpoint as ckpt  # torch: only where checkpoints are touched (analysis/ reads runs)

        return ckpt.latest_valid_checkpoint(self.checkpoints)

    # -- writing (by the process that holds the lock) ----------------------------------------------
    def create(self, config: dict) -> None:
        os.makedirs(self.path, exist_ok=True)
        write_json(self.file(CONFIG), config)

    def clean_leftovers(self) -> None:
        """Remove what a killed process left half-written: temporary checkpoint folders, a model being
        saved, temporary JSON files. A model/ replaced at the moment of the kill is put back."""
        if os.path.isdir(self.checkpoints):
            for name in os.listdir(self.checkpoints):
                if name.startswith(".tmp_"):
                    shutil.rmtree(os.path.join(self.checkpoints, name), ignore_errors=True)
        shutil.rmtree(self.file(_MODEL_TMP), ignore_errors=True)
        if os.path.isdir(self.file(_MODEL_OLD)):
            if os.path.isdir(self.model_dir):
                shutil.rmtree(self.file(_MODEL_OLD), ignore_errors=True)
            else:
                os.rename(self.file(_MODEL_OLD), self.model_dir)
        for name in os.listdir(self.path):
            if name.endswith(".tmp"):
                _remove(self.file(name))

    def reset(self) -> None:
        """Delete everything the run wrote (--overwrite, or a restart of a run without a checkpoint)."""
        for name in os.listdir(self.path):
            if name not in (LOCK, OWNER):
                path = self.file(name)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else _remove(path)

    def metrics_log(self, start_wandb=None) -> MetricsLog:
        return MetricsLog(self.file(METRICS), start_wandb)

    def save_checkpoint(self, step, model, optimizer, scheduler, state: dict, keep: int, dist=None) -> str:
        from trainer import checkpoint as ckpt

        return ckpt.save_checkpoint(self.checkpoints, step, model, optimizer, scheduler, state, keep=keep, dist=dist)

    def write_artifacts(self, files: dict) -> None:
        """{file name: JSON object}: a method's artefacts."""
        for name, obj in files.items():
            write_json(self.file(name), obj)

    def write_results(self, results: dict) -> None:
        write_json(self.file(RESULTS), results)

    def save_model(self, model, write_extras=None) -> None:
        """model/, replaced atomically: written beside it, then renamed in place of the old one.
        write_extras(folder, model): more files for the folder (tokenizer, model card: trainer/export.py), written
        first, so that what it sets on the model's configs (eos ids) is in the files save_pretrained writes."""
        tmp, old = self.file(_MODEL_TMP), self.file(_MODEL_OLD)
        shutil.rmtree(tmp, ignore_errors=True)
        if write_extras is not None:
            os.makedirs(tmp)
            write_extras(tmp, model)
        model.save_pretrained(tmp)
        if os.path.isdir(self.model_dir):
            shutil.rmtree(old, ignore_errors=True)
            os.rename(self.model_dir, old)
        os.rename(tmp, self.model_dir)
        shutil.rmtree(old, ignore_errors=True)


def _remove(path) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


class FollowerRunDir(RunDir):
    """The run folder as the ranks other than 0 of a torchrun job see it: they read it (the checkpoint to
    restore) and never write; rank 0 holds the lock and writes everything."""

    def create(self, config: dict) -> None:
        pass

    def clean_leftovers(self) -> None:
        pass

    def reset(self) -> None:
        pass

    def metrics_log(self, start_wandb=None) -> MetricsLog:
        return MetricsLog(None)

    def save_checkpoint(self, step, model, optimizer, scheduler, state: dict, keep: int, dist=None) -> None:
        """Only a sharded (--fsdp) model has anything for this rank to write: its own shards."""
        from trainer import checkpoint as ckpt

        ckpt.save_checkpoint(self.checkpoints, step, model, optimizer, scheduler, state, keep=keep, dist=dist)

    def write_artifacts(self, files: dict) -> None:
        pass

    def write_results(self, results: dict) -> None:
        pass

    def save_model(self, model, write_extras=None) -> None:
        pass

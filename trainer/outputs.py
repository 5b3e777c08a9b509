"""The run directory: naming, config.json, metrics.jsonl, results.json, artefacts, optional wandb.

Layout and fields: docs/formats.md. Files are written atomically (temporary file + rename) so a crash
never leaves a half-written JSON; metrics.jsonl is appended line by line and, on resume, cut back to
the checkpoint's step so that the resumed run's log equals an uninterrupted one.
"""
import hashlib
import json
import math
import os
import re

from errors import UsageError

def _clean(obj):
    """JSON-safe copy: NaN/inf -> None (the JSON files must stay standard JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path, obj):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(_clean(obj), fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


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


class MetricsLog:
    """Appends one JSON object per line to metrics.jsonl (and to wandb when enabled)."""

    def __init__(self, run_dir, wandb_run=None):
        self.path = os.path.join(run_dir, "metrics.jsonl")
        self.wandb_run = wandb_run

    def truncate_after(self, step: int):
        """Drop lines logged after `step` (work lost in a crash, to be redone by the resumed run)."""
        if not os.path.exists(self.path):
            return
        with open(self.path) as fh:
            lines = [ln for ln in fh if ln.strip()]
        kept = []
        for line in lines:
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except ValueError:
                break  # a torn last line from the crash
        tmp = self.path + ".tmp"
        with open(tmp, "w") as fh:
            fh.writelines(kept)
        os.replace(tmp, self.path)

    def write(self, record: dict):
        with open(self.path, "a") as fh:
            fh.write(json.dumps(_clean(record)) + "\n")
        if self.wandb_run is not None:
            flat = {}
            for key, value in record.items():
                if isinstance(value, dict):
                    flat.update({f"{g}/{key}": v for g, v in value.items() if isinstance(v, (int, float))})
                elif isinstance(value, (int, float)):
                    flat[key] = value
            self.wandb_run.log(flat, step=record.get("step"))


def start_wandb(args, run_name, config):
    """wandb only when asked for (a project or a mode); the local files are always written."""
    if not args.wandb_project and args.wandb_mode in (None, "disabled"):
        return None
    try:
        import wandb
    except ImportError:
        raise UsageError("--wandb_project/--wandb_mode: wandb is not installed; pip install wandb") from None
    return wandb.init(project=args.wandb_project or "aioli", entity=args.wandb_entity, name=run_name,
                      mode=args.wandb_mode or "online", config=config)

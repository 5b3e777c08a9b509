"""Writers of a run's files (the run directory itself: trainer/run_dir.py): atomic JSON (temporary file +
rename, so a crash never leaves a half-written file), the metrics log (appended line by line and, on
resume, cut back to the checkpoint's step so that the resumed run's log equals an uninterrupted one),
and the optional wandb run.
"""
import json
import math
import os

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


class MetricsLog:
    """Appends one JSON object per line to metrics.jsonl (and to wandb when enabled)."""

    def __init__(self, path, start_wandb=None):
        """start_wandb: None, or a function that starts the wandb run (called at the first line written).
        path None: a log that writes nothing (the ranks other than 0 of a torchrun job)."""
        self.path = path
        self.wandb_run = None
        self._start_wandb = start_wandb

    def close(self):
        """Finish the wandb run, if any (the file needs no closing: every line is appended and closed)."""
        if self.wandb_run is not None:
            self.wandb_run.finish()
            self.wandb_run = None

    def truncate_after(self, step: int):
        """Drop lines logged after `step` (work lost in a crash, to be redone by the resumed run)."""
        if self.path is None or not os.path.exists(self.path):
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
        if self.path is None:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps(_clean(record)) + "\n")
        if self._start_wandb is not None:
            self.wandb_run, self._start_wandb = self._start_wandb(), None
        if self.wandb_run is not None:
            flat = {}
            for key, value in record.items():
                if isinstance(value, dict):
                    flat.update({f"{g}/{key}": v for g, v in value.items() if isinstance(v, (int, float))})
                elif isinstance(value, (int, float)):
                    flat[key] = value
            self.wandb_run.log(flat, step=record.get("step"))

    def log_tables(self, tables: dict, step=None):
        """A method's tables (MixingMethod.tables) to wandb, when it is on."""
        if self.wandb_run is None or not tables:
            return
        import wandb

        self.wandb_run.log({name: wandb.Table(columns=t["columns"], data=t["rows"]) for name, t in tables.items()},
                           step=step)


def start_wandb(out, run_name, config):
    """wandb only when asked for (out: the OutputOptions; a project or a mode); the local files are always
    written."""
    if not out.wandb_project and out.wandb_mode in (None, "disabled"):
        return None
    try:
        import wandb
    except ImportError:
        raise UsageError("--wandb_project/--wandb_mode: wandb is not installed; pip install wandb") from None
    return wandb.init(project=out.wandb_project or "aioli", entity=out.wandb_entity, name=run_name,
                      mode=out.wandb_mode or "online", config=config)

"""Reading run directories written by `main.py` (layout in docs/formats.md; file names: trainer/run_dir.py).

A run directory holds `config.json` and `results.json`. Only these keys are relied on:

- config.json: `groups` (list), `method`, `initial_weights` ({group: w}), `selection_seed`,
  `custom_name`, `sample_rule`, `parent` ({"path", "step"} for children of a dynamic sweep), `run_name`.
- results.json: `status` ("complete" | "break"), `step`, `groups`, `val_loss` / `test_loss` ({group: x}),
  `average_test_perplexity`, `weights_trajectory` ([{"step", "weights"}]), `val_history`
  ([{"step", "val_loss"}]).

Anything else is optional; a missing required piece is a UsageError naming the file.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from errors import UsageError
from trainer.run_dir import CHECKPOINTS, CONFIG, MODEL, RESULTS, RunDir

from .common import read_json


def _loss(v) -> float:
    """A loss from results.json; the trainer writes a NaN/inf loss (a diverged run) as null."""
    return float("nan") if v is None else float(v)


@dataclass
class Run:
    path: str
    config: dict
    results: dict
    name: str = field(init=False)

    def __post_init__(self):
        self.name = self.config.get("run_name") or self.results.get("run_name") or os.path.basename(self.path)

    @property
    def groups(self) -> list:
        groups = self.config.get("groups") or self.results.get("groups")
        if not groups:
            raise UsageError(f"{self.path}: neither config.json nor results.json lists the run's groups")
        return list(groups)

    @property
    def method(self) -> str:
        return str(self.config.get("method") or self.results.get("method") or "static")

    @property
    def seed(self):
        return self.config.get("selection_seed", self.results.get("seed"))

    @property
    def status(self) -> str:
        return str(self.results.get("status", "complete"))

    @property
    def parent(self):
        return self.config.get("parent") or None

    def reached_end(self) -> bool:
        """True when the run's last step is its planned total (a --break_steps at the very end counts)."""
        total = self.config.get("total_steps")
        return total is not None and int(self.results.get("step", -1)) >= int(total)

    def mixture(self) -> np.ndarray:
        """The run's initial mixture, ordered like `groups`, normalized (for a static run: its mixture)."""
        w = self.config.get("initial_weights")
        if not isinstance(w, dict):
            raise UsageError(f"{self.path}/config.json has no 'initial_weights' {{group: weight}}")
        try:
            x = np.array([float(w.get(g, 0.0)) for g in self.groups])
        except (TypeError, ValueError):
            raise UsageError(f"{self.path}/config.json: 'initial_weights' must map groups to numbers") from None
        if x.sum() <= 0 or np.any(x < 0):
            raise UsageError(f"{self.path}/config.json: 'initial_weights' must be non-negative, not all zero")
        return x / x.sum()

    def losses(self, split: str = "val") -> dict:
        """{group: loss} of the final evaluation on `split` ("val" or "test")."""
        d = self.results.get(f"{split}_loss")
        if not isinstance(d, dict) or not d:
            raise UsageError(f"{self.path}/results.json has no '{split}_loss' (status {self.status}); "
                             f"use --split val, or finish the run")
        return {g: _loss(v) for g, v in d.items()}

    def loss_vector(self, split: str = "val", groups=None) -> np.ndarray:
        d = self.losses(split)
        groups = groups or self.groups
        missing = [g for g in groups if g not in d]
        if missing:
            raise UsageError(f"{self.path}/results.json: '{split}_loss' lacks group(s) {', '.join(missing)}")
        return np.array([d[g] for g in groups])

    def val_history(self) -> list:
        """[(step, {group: loss})] sorted by step."""
        out = []
        for entry in self.results.get("val_history") or []:
            if isinstance(entry, dict) and isinstance(entry.get("val_loss"), dict):
                out.append((int(entry.get("step", 0)), {g: _loss(v) for g, v in entry["val_loss"].items()}))
        return sorted(out, key=lambda e: e[0])

    def val_loss_at(self, step: int):
        """{group: loss} evaluated at `step` (history, else the final result when it is at that step)."""
        for s, losses in self.val_history():
            if s == step:
                return losses
        if int(self.results.get("step", -1)) == step and isinstance(self.results.get("val_loss"), dict):
            return self.losses("val")
        return None

    def is_uniform(self) -> bool:
        if self.config.get("sample_rule") == "stratified":
            return True
        try:
            p = self.mixture()
        except UsageError:
            return False
        return bool(np.allclose(p, 1.0 / len(p), atol=1e-6))

    def label(self) -> str:
        """Row label of the report: custom_name (final runs of DoReMi/DoGE/DML/grid), else the method, with
        static runs split into 'stratified' (uniform) and 'static' (a sweep point)."""
        custom = self.config.get("custom_name")
        if custom:
            return str(custom)
        if self.method == "static":
            return "stratified" if self.is_uniform() else "static"
        return self.method

    def average_test_perplexity(self):
        x = self.results.get("average_test_perplexity")
        if x is None and isinstance(self.results.get("test_loss"), dict):
            vals = [math.exp(_loss(v)) for v in self.results["test_loss"].values()]
            x = sum(vals) / len(vals) if vals else None
        return None if x is None else float(x)


def is_run_dir(path: str) -> bool:
    return RunDir(path).is_run()


def load_run(path: str) -> Run:
    run = RunDir(path)
    return Run(path=os.path.abspath(path), config=read_json(run.file(CONFIG), "config"),
               results=read_json(run.file(RESULTS), "results"))


def find_runs(paths, flag: str = "--run_dir") -> list:
    """Every run directory given, or found below a given directory (checkpoints/ and model/ are skipped).
    A missing path or a path without any run is a UsageError."""
    runs, seen = [], set()
    for p in paths:
        if not os.path.isdir(p):
            raise UsageError(f"{flag} {p} is not a directory")
        found = []
        if is_run_dir(p):
            found.append(p)
        else:
            for root, dirs, _files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if d not in (CHECKPOINTS, MODEL))
                if is_run_dir(root):
                    found.append(root)
                    dirs[:] = []  # a run directory does not hold other runs
        if not found:
            raise UsageError(f"{flag} {p} holds no run directory (config.json + results.json)")
        for f in found:
            key = os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                runs.append(load_run(f))
    return runs


def static_runs(runs, split: str = "val"):
    """(kept, skipped_reason_counts): complete static runs that are not children of a dynamic sweep and
    that have losses on `split`; everything else is counted, not silently mixed into a static fit."""
    kept, skipped = [], {}
    for r in runs:
        reason = None
        if r.method != "static":
            reason = f"method {r.method}"
        elif r.parent:
            reason = "child of a dynamic sweep"
        elif r.status != "complete" and not r.reached_end():
            reason = f"status {r.status}"  # a parent stopped mid-run: its losses are not final
        elif not isinstance(r.results.get(f"{split}_loss"), dict) or not r.results[f"{split}_loss"]:
            reason = f"no {split}_loss"
        elif not all(math.isfinite(x) for x in r.losses(split).values()):
            reason = f"non-finite {split}_loss (diverged)"
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
        else:
            kept.append(r)
    return kept, skipped


def common_groups(runs, flag: str = "--run_dir") -> list:
    """The runs' shared group list; runs of different settings cannot be fitted together."""
    groups = runs[0].groups
    for r in runs[1:]:
        if sorted(r.groups) != sorted(groups):
            raise UsageError(f"{flag}: runs {runs[0].path} and {r.path} mix different groups "
                             f"({'/'.join(groups)} vs {'/'.join(r.groups)}); pass one setting at a time")
    return groups

"""Write small run directories in the documented layout (docs/formats.md) without training anything:
for the tests of analysis/ and for trying the CLI. Only the keys that analysis/ reads are written."""
from __future__ import annotations

import math
import os

from analysis.common import write_json


def write_run(root, name, groups, weights, *, method="static", seed=0, val_loss=None, test_loss=None,
              val_history=None, weights_trajectory=None, status="complete", step=100, parent=None,
              custom_name=None, sample_rule=None, artefacts=None, config_extra=None, total_steps=None) -> str:
    """Create <root>/<name>/ with config.json and results.json (and artefacts: {file name: JSON object}).

    weights: {group: w} or a list in `groups` order. val_loss / test_loss: {group: x} or lists.
    val_history: [(step, {group: x} or list)]. total_steps defaults to `step`, or twice it for a run
    with status "break" (a parent stopped mid-run). Returns the run directory."""
    path = os.path.join(root, name)
    os.makedirs(path, exist_ok=True)

    def as_dict(v):
        return None if v is None else (dict(v) if isinstance(v, dict) else dict(zip(groups, v)))

    w = as_dict(weights)
    config = {"run_name": name, "groups": list(groups), "method": method, "initial_weights": w,
              "selection_seed": seed, "custom_name": custom_name,
              "total_steps": total_steps or (2 * step if status == "break" else step),
              "sample_rule": sample_rule or ("mixture" if method == "static" else "stratified"),
              "parent": parent, **(config_extra or {})}
    results = {"run_name": name, "method": method, "seed": seed, "status": status, "step": step,
               "groups": list(groups), "final_weights": w,
               "weights_trajectory": weights_trajectory or [{"step": 0, "weights": w}],
               "val_history": [{"step": s, "val_loss": as_dict(v)} for s, v in (val_history or [])]}
    if val_loss is not None:
        results["val_loss"] = as_dict(val_loss)
        results["average_val_loss"] = sum(results["val_loss"].values()) / len(groups)
    if test_loss is not None and status == "complete":
        t = as_dict(test_loss)
        results["test_loss"] = t
        results["test_perplexity"] = {g: math.exp(x) for g, x in t.items()}
        results["average_test_loss"] = sum(t.values()) / len(groups)
        results["average_test_perplexity"] = sum(math.exp(x) for x in t.values()) / len(groups)
    write_json(os.path.join(path, "config.json"), config)
    write_json(os.path.join(path, "results.json"), results)
    for fname, obj in (artefacts or {}).items():
        write_json(os.path.join(path, fname), obj)
    return path

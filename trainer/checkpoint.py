"""Crash-safe checkpoints of the whole training state.

A checkpoint is a directory `checkpoints/step_<NNNNNNNN>/` holding `model.safetensors`,
`optimizer.pt`, `scheduler.pt`, `rng.pt` (torch RNG states), `state.json` (step, sampler state,
method state, histories, the python RNG state) and `manifest.json` (size and sha256 of every
other file), written last. It is built in a temporary directory and renamed into place, so a crash
never leaves a half checkpoint under the final name; a checkpoint whose manifest is missing or does
not match its files (a truncated copy, a full disk) is skipped with a warning and the previous one is
used. Tensors are loaded with `weights_only=True`; nothing is ever unpickled.
"""
import hashlib
import json
import os
import random
import shutil
import warnings

import numpy as np
import torch
from safetensors.torch import load_model, save_model

PREFIX = "step_"


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path, obj):
    with open(path, "w") as fh:
        json.dump(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def save_checkpoint(ckpt_root, step, model, optimizer, scheduler, state: dict, keep: int = 2) -> str:
    """Write the checkpoint for `step` atomically and keep only the newest `keep` checkpoints."""
    os.makedirs(ckpt_root, exist_ok=True)
    final = os.path.join(ckpt_root, f"{PREFIX}{step:08d}")
    tmp = os.path.join(ckpt_root, f".tmp_{PREFIX}{step:08d}_{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    save_model(model, os.path.join(tmp, "model.safetensors"))
    torch.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
    torch.save(scheduler.state_dict(), os.path.join(tmp, "scheduler.pt"))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, os.path.join(tmp, "rng.pt"))
    py_state = random.getstate()
    state = dict(state, step=step, python_rng=[py_state[0], list(py_state[1]), py_state[2]])
    _write_json(os.path.join(tmp, "state.json"), state)
    manifest = {name: {"size": os.path.getsize(os.path.join(tmp, name)), "sha256": _sha256(os.path.join(tmp, name))}
                for name in sorted(os.listdir(tmp))}
    _write_json(os.path.join(tmp, "manifest.json"), manifest)
    if os.path.exists(final):  # a re-save of the same step (e.g. resumed then saved again)
        shutil.rmtree(final)
    os.rename(tmp, final)
    for old in list_checkpoints(ckpt_root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_root):
    """Checkpoint directories under the final names, oldest first (not validated)."""
    if not os.path.isdir(ckpt_root):
        return []
    names = sorted(n for n in os.listdir(ckpt_root) if n.startswith(PREFIX))
    return [os.path.join(ckpt_root, n) for n in names]


def is_valid(path) -> bool:
    manifest_path = os.path.join(path, "manifest.json")
    try:
        with open(manifest_path) as fh:
            manifest = json.load(fh)
        for name, info in manifest.items():
            file = os.path.join(path, name)
            if os.path.getsize(file) != info["size"] or _sha256(file) != info["sha256"]:
                return False
        return {"model.safetensors", "optimizer.pt", "state.json"} <= set(manifest)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def latest_valid_checkpoint(ckpt_root):
    """The newest checkpoint that passes its manifest; warns about every newer one it skips."""
    for path in reversed(list_checkpoints(ckpt_root)):
        if is_valid(path):
            return path
        warnings.warn(f"checkpoint {path} is incomplete or corrupt (manifest mismatch); using an older one",
                      stacklevel=2)
    return None


def load_checkpoint(path, model, optimizer=None, scheduler=None, restore_rng=True) -> dict:
    """Load a validated checkpoint into the given objects; returns state.json's content."""
    load_model(model, os.path.join(path, "model.safetensors"), device=str(next(model.parameters()).device))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(os.path.join(path, "optimizer.pt"), weights_only=True,
                                             map_location="cpu"))
    if scheduler is not None and os.path.exists(os.path.join(path, "scheduler.pt")):
        scheduler.load_state_dict(torch.load(os.path.join(path, "scheduler.pt"), weights_only=True))
    with open(os.path.join(path, "state.json")) as fh:
        state = json.load(fh)
    if restore_rng:
        rng = torch.load(os.path.join(path, "rng.pt"), weights_only=True)
        torch.set_rng_state(rng["torch"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        version, internal, gauss = state["python_rng"]
        random.setstate((version, tuple(internal), gauss))
    return state


def numpy_free(obj):
    """Turn numpy scalars/arrays inside a nested structure into JSON-serializable Python values."""
    if isinstance(obj, dict):
        return {k: numpy_free(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [numpy_free(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj

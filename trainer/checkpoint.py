"""Crash-safe checkpoints of the whole training state.

A checkpoint is a directory `checkpoints/step_<NNNNNNNN>/` holding `model.safetensors`,
`optimizer.pt`, `scheduler.pt`, `rng.pt` (torch RNG states), `state.json` (step, sampler state,
method state, histories, the python RNG state) and `manifest.json` (size and sha256 of every
other file), written last. A sharded run (`--fsdp`) writes its model and optimizer as a
torch.distributed.checkpoint folder `sharded/` instead of the first two files (trainer/sharding.py);
either layout resumes into either kind of run. It is built in a temporary directory and renamed into place, so a crash
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
from safetensors.torch import load_file, load_model, save_model

from trainer.distributed import Dist
from trainer.sharding import SHARDED, has_sharded_state, is_sharded, load_full_into_sharded, load_sharded, save_sharded

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


def save_checkpoint(ckpt_root, step, model, optimizer, scheduler, state: dict, keep: int = 2, dist=None):
    """Write the checkpoint for `step` atomically and keep only the newest `keep` checkpoints; returns its
    path on rank 0. Rank 0 writes everything, except that every rank writes its shards of a sharded model
    (so all ranks call this)."""
    dist = dist or Dist()
    sharded = is_sharded(model)
    if not dist.main and not sharded:
        return None
    final = os.path.join(ckpt_root, f"{PREFIX}{step:08d}")
    tmp = os.path.join(ckpt_root, f".tmp_{PREFIX}{step:08d}_{os.getpid()}")
    if dist.main:
        os.makedirs(ckpt_root, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    if sharded:
        tmp = dist.broadcast(tmp)  # rank 0's folder, which exists once the broadcast returns
        save_sharded(os.path.join(tmp, SHARDED), model, optimizer)  # on rank 0 it returns once all shards are written
        if not dist.main:
            return None
    else:
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
                for name in _files_under(tmp)}
    _write_json(os.path.join(tmp, "manifest.json"), manifest)
    if os.path.exists(final):  # a re-save of the same step (e.g. resumed then saved again)
        shutil.rmtree(final)
    os.rename(tmp, final)
    for old in list_checkpoints(ckpt_root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _files_under(folder):
    """Relative paths of every file below `folder`, sorted."""
    return sorted(os.path.relpath(os.path.join(parent, name), folder)
                  for parent, _, names in os.walk(folder) for name in names)


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
        single = {"model.safetensors", "optimizer.pt", "state.json"}
        return single <= set(manifest) or {os.path.join(SHARDED, ".metadata"), "state.json"} <= set(manifest)
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
    """Load a validated checkpoint into the given objects; returns state.json's content. Either layout
    (single-file or sharded) loads into either kind of model (plain or --fsdp sharded)."""
    optimizer_file = os.path.join(path, "optimizer.pt")
    if has_sharded_state(path):
        load_sharded(os.path.join(path, SHARDED), model, optimizer)
    elif is_sharded(model):
        load_full_into_sharded(model, optimizer, load_file(os.path.join(path, "model.safetensors")),
                               torch.load(optimizer_file, weights_only=True) if optimizer is not None else None)
    else:
        load_model(model, os.path.join(path, "model.safetensors"), device=str(next(model.parameters()).device))
        if optimizer is not None:
            optimizer.load_state_dict(torch.load(optimizer_file, weights_only=True, map_location="cpu"))
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

"""Sharded data parallelism (`--fsdp`): FSDP2's `fully_shard` over torchrun's ranks, and checkpoints of
sharded state through `torch.distributed.checkpoint` (DCP).

Each rank keeps 1/N of every parameter, gradient and optimizer moment; a transformer block gathers its
full weights just for its forward and backward. The loop is the same as with DDP: every rank trains its
slice of the global batch and gradients are averaged over the ranks (reduce-scatter instead of
all-reduce), so a sharded run trains what one process trains (docs/distributed.md).

Checkpoints and resume across layouts: a sharded run writes its model and optimizer as a DCP folder
(`sharded/`, one file per rank plus `.metadata`), which DCP re-shards when it is read, so it loads into
any number of sharded ranks or into a plain model (one process, DDP). A single-file checkpoint (one
process, DDP) loads into a sharded model through the full-state-dict path.
"""
import contextlib
import os
import sys

import torch

# torch.distributed's checkpoint and tensor modules take seconds to import: they are imported where they
# are needed, never by a plain run.

SHARDED = "sharded"  # the DCP folder inside a checkpoint directory


def shard_model(model):
    """fully_shard every transformer block (the classes the model names in `_no_split_modules`), then the
    root (embeddings, final norm, head); the model is changed in place and returned."""
    from torch.distributed.fsdp import fully_shard

    block_classes = set(getattr(model, "_no_split_modules", None) or ())
    blocks = [m for m in model.modules() if type(m).__name__ in block_classes]
    if not blocks:
        raise RuntimeError(f"--fsdp: {type(model).__name__} names no transformer block class (_no_split_modules)")
    for block in blocks:
        fully_shard(block)
    fully_shard(model)
    return model


def _dtensor_class():
    """DTensor, if anything imported it (fully_shard does); else None, and no model can hold one."""
    module = sys.modules.get("torch.distributed.tensor")
    return module.DTensor if module is not None else None


def is_sharded(model) -> bool:
    dtensor = _dtensor_class()
    return dtensor is not None and any(isinstance(p, dtensor) for p in model.parameters())


def local_value(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor's full value as a plain tensor (the gradient norm of sharded parameters); others as they are."""
    dtensor = _dtensor_class()
    return tensor.full_tensor() if dtensor is not None and isinstance(tensor, dtensor) else tensor


def accumulating(model, last: bool, distributed: bool):
    """The context of one micro-batch's backward: gradients are exchanged over the ranks only at the last
    micro-batch of a step (DDP: no_sync before it; FSDP: gradient sync switched off before it)."""
    if hasattr(model, "set_requires_gradient_sync"):  # an FSDP2 module
        model.set_requires_gradient_sync(last)
        return contextlib.nullcontext()
    if distributed and not last and hasattr(model, "no_sync"):
        return model.no_sync()
    return contextlib.nullcontext()


def unsharded_copy(model):
    """A plain copy of a sharded model, on the CPU of rank 0 (None elsewhere), whose save_pretrained writes
    the same files as a one-process run's; every rank must call it (the weights are gathered)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import FSDPModule

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not state:  # not rank 0
        return None
    plain_class = next(c for c in type(model).__bases__ if not issubclass(c, FSDPModule))
    with torch.device("meta"):
        plain = plain_class._from_config(model.config)
    plain.load_state_dict(state, assign=True)  # takes the gathered tensors as they are, no copy
    plain.tie_weights()  # assign=True replaced tied parameters one by one
    plain.generation_config = model.generation_config
    return plain


def save_sharded(folder: str, model, optimizer) -> None:
    """Every rank writes its shards of the model and optimizer into `folder` (a collective)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    dcp.save({"model": get_model_state_dict(model), "optimizer": get_optimizer_state_dict(model, optimizer)},
             checkpoint_id=folder)


def load_sharded(folder: str, model, optimizer=None) -> None:
    """Read a DCP folder into the live model (sharded or plain, any number of ranks: DCP re-shards)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (get_model_state_dict, get_optimizer_state_dict,
                                                         set_model_state_dict, set_optimizer_state_dict)

    state = {"model": get_model_state_dict(model)}
    if optimizer is not None:
        state["optimizer"] = get_optimizer_state_dict(model, optimizer)
    # one process (no process group) reads every shard itself
    dcp.load(state, checkpoint_id=folder, no_dist=not torch.distributed.is_initialized())
    set_model_state_dict(model, state["model"])
    if optimizer is not None:
        set_optimizer_state_dict(model, optimizer, state["optimizer"])


def load_full_into_sharded(model, optimizer, model_state: dict, optimizer_state=None) -> None:
    """A single-file checkpoint (whole tensors, read by every rank) into a sharded model: each rank keeps
    its shard. `optimizer_state` is torch's own optimizer.state_dict() layout (parameters by position)."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                         set_optimizer_state_dict)

    full = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_state, options=full)
    if optimizer is not None and optimizer_state is not None:
        set_optimizer_state_dict(model, optimizer, _by_name(model, optimizer, optimizer_state), options=full)


def _by_name(model, optimizer, state: dict) -> dict:
    """torch's optimizer state dict (parameters numbered in the order of the optimizer's groups) keyed by
    parameter names instead, the form the distributed state-dict API reads. The numbering is the same for
    the sharded optimizer, which is built over the same parameters in the same order."""
    names = {id(p): name for name, p in model.named_parameters()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    groups = [dict(group, params=[order[i] for i in group["params"]]) for group in state["param_groups"]]
    return {"state": {order[i]: value for i, value in state["state"].items()}, "param_groups": groups}


def has_sharded_state(checkpoint_dir: str) -> bool:
    return os.path.isfile(os.path.join(checkpoint_dir, SHARDED, ".metadata"))

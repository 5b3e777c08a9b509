"""Data parallelism under `torchrun`: which process this is, and the few collectives the loop needs.

`torchrun --nproc_per_node N main.py ...` starts N copies of main.py with RANK, LOCAL_RANK and
WORLD_SIZE set; a plain `python main.py` is world size 1 and never touches torch.distributed. The rules
that make N ranks train exactly what one process trains (docs/distributed.md):

- every rank runs the same sampler and draws the same GLOBAL batch (--batch_size keeps the paper's
  meaning); rank r trains on its contiguous slice of it, so the windows trained do not depend on N;
- DDP averages gradients over ranks, so each rank scales its loss by N: the average is then the
  gradient of the global batch's token mean, as in one process;
- evaluations are sharded over ranks and their per-group loss sums and token counts all-reduced, so
  every rank sees the same losses and every method decides the same mixture on every rank;
- rank 0 alone writes the run directory (config, metrics, checkpoints, artefacts, wandb).
"""
import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; world 1 (the default) means no torch.distributed at all."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def block(self, n: int) -> slice:
        """This rank's contiguous block of n rows (equal blocks when the world size divides n, as it does
        for the global batch; evaluation splits are uneven)."""
        return slice(n * self.rank // self.world, n * (self.rank + 1) // self.world)

    def sum(self, values):
        """Element-wise sum over ranks, the same on every rank: a numpy array (as float64), or a tensor
        (summed on its own device)."""
        if not self.active:
            return values
        if isinstance(values, torch.Tensor):
            out = values.clone()
            torch.distributed.all_reduce(out)
            return out
        # a copy: all_reduce works in place, and the caller's array (maybe a view of a tensor) must stay as it is
        tensor = torch.tensor(np.array(values, dtype=np.float64), device=_collective_device())
        torch.distributed.all_reduce(tensor)
        return tensor.cpu().numpy()

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank (a picklable Python value: only ever our own small dicts)."""
        if not self.active:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def check_same(self, obj, what: str) -> None:
        """Stop if this rank's `obj` (JSON) differs from rank 0's: the ranks must take the same decisions
        (mixture, sampler position), and a difference would silently train a different run."""
        if not self.active:
            return
        digest = hashlib.sha256(json.dumps(obj, sort_keys=True, default=lambda a: a.tolist()).encode()).hexdigest()
        if self.broadcast(digest) != digest:
            raise RuntimeError(f"rank {self.rank}: its {what} differs from rank 0's; the ranks no longer train "
                               "the same run (please report this)")

    def wait_for_all(self) -> None:
        """Return once every rank has reached this point. main.py calls it before tearing the process group
        down, so that the ranks leave together: once, on a loaded 2-core CI machine, a finished gloo run lost
        rank 1 to a SIGABRT at exit while rank 0 was still writing the run's outputs."""
        if self.active:
            torch.distributed.barrier()

    def join(self) -> None:
        """Join torchrun's process group (NCCL on GPUs, gloo on CPUs); nothing for world 1."""
        if self.active and not torch.distributed.is_initialized():
            if torch.cuda.is_available():
                torch.cuda.set_device(self.local_rank)
            torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def _collective_device():
    """Where collectives' tensors live: the rank's GPU with NCCL, the CPU with gloo."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def from_environment() -> Dist:
    """The Dist of this process from torchrun's variables (world 1 without them); `join` connects it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    return Dist(rank=int(os.environ["RANK"]), world=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def shutdown() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()

"""Optimizer and learning-rate schedules.

AdamW (eps 1e-8, betas (0.9, 0.999)) with weight decay 0.01 on every parameter except biases and
normalization weights. Schedules are functions of the optimizer step (updates done), so a resumed
run recomputes the same learning rate from the step alone.
"""
import math
from dataclasses import dataclass
from typing import Optional

import torch

from errors import UsageError
from options import option


@dataclass(frozen=True)
class OptimOptions:
    """The optimizer's learning-rate schedule."""

    lr: float = option(5e-5, "peak learning rate")
    lr_scheduler: str = option("linear", "linear_warmup_cosine (the paper's), cosine, or any transformers "
                               "scheduler name")
    warmup_steps: int = option(50, "steps of the learning-rate warmup")
    end_lr: Optional[float] = option(None, "final lr of the cosine schedules (default: 1e-4 for "
                                     "linear_warmup_cosine, the paper's effective value; 0 for cosine)")

    def check(self):
        if not (math.isfinite(self.lr) and self.lr > 0):  # the schedules are lr(step) / peak
            raise UsageError(f"--lr: must be a positive finite number, got {self.lr}")
        if self.warmup_steps < 0:
            raise UsageError(f"--warmup_steps: must be >= 0, got {self.warmup_steps}")

WARMUP_START_LR = 1e-7  # the paper's linear warm-up starts here, not at 0


def build_optimizer(model, lr: float, weight_decay: float = 0.01):
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        # 1-D parameters are biases and LayerNorm weights: decaying them only hurts.
        (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # the fused kernel (one launch for all parameters) on GPUs; the same arithmetic as the loop version
    fused = all(p.is_cuda for p in decay + no_decay) or None
    return torch.optim.AdamW(groups, lr=lr, eps=1e-8, betas=(0.9, 0.999), fused=fused)


def linear_warmup_cosine(step: int, peak: float, end: float, warmup: int, total: int) -> float:
    """The paper's LinearWarmupCosineLR: 1e-7 -> peak linearly over `warmup` steps, then a cosine from
    peak to `end` at `total`, held afterwards. With the paper's settings (5e-4, 500, 5000) the end is
    1e-4: its code ignored --end_lr and used that hard-coded value, which is our default."""
    if step < warmup:
        return WARMUP_START_LR + (peak - WARMUP_START_LR) * step / warmup
    if step >= total:
        return end
    progress = (step - warmup) / max(1, total - warmup)
    return end + (peak - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine(step: int, peak: float, end: float, total: int) -> float:
    """torch's CosineAnnealingLR to `end` (no warm-up), as the paper's `cosine` option."""
    if step >= total:
        return end
    return end + (peak - end) * 0.5 * (1.0 + math.cos(math.pi * step / total))


def build_scheduler(optimizer, name: str, *, peak: float, warmup: int, total: int, end_lr=None):
    """A LambdaLR whose factor is lr(step)/peak; `name` is ours or any transformers scheduler name."""
    if name == "linear_warmup_cosine":
        end = 1e-4 if end_lr is None else end_lr
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: linear_warmup_cosine(s, peak, end, warmup, total) / peak)
    if name == "cosine":
        end = 0.0 if end_lr is None else end_lr
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine(s, peak, end, total) / peak)
    from transformers import get_scheduler
    from transformers.trainer_utils import SchedulerType

    valid = [t.value for t in SchedulerType]
    if name not in valid:
        raise UsageError(f"--lr_scheduler {name}: unknown; choose linear_warmup_cosine, cosine or one of "
                         + ", ".join(valid))
    try:
        return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total)
    except (ValueError, TypeError) as err:
        raise UsageError(f"--lr_scheduler {name}: {err}") from None

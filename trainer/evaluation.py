"""Per-group evaluation on fixed windows (the same windows every time).

Loss of a group = mean cross-entropy over all scored tokens of its windows (a token mean; with
equal-length windows this equals the paper's mean of per-sequence means). Perplexity = exp(loss).
The paper's headline metric, average test perplexity, is the mean over groups of exp(test loss).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

from data.bundle import gather_rows
from trainer import sharding
from trainer.distributed import Dist


def token_losses(model, batch, autocast):
    """Per-token cross-entropy (B, L-1) in float32 and the 0/1 mask of tokens that count.

    Computed from the logits here (not by the model's own loss) so that every method and the
    evaluation share one definition, with positions labelled -100 excluded. The targets are shifted
    (the last position gets -100) rather than the logits cut: a cut (B, L-1, V) slice is not contiguous
    and flattening it copied every logit, a large share of an evaluation's time on a CPU."""
    with autocast():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    targets = batch["labels"][:, 1:]
    shifted = F.pad(targets, (0, 1), value=-100)
    logits = logits.float()
    losses = F.cross_entropy(logits.view(-1, logits.shape[-1]), shifted.reshape(-1),
                             ignore_index=-100, reduction="none").view(shifted.shape)
    return losses[:, :-1].contiguous(), (targets != -100).float()


def to_device(arrays: dict, device, rows=slice(None), width=None) -> dict:
    """int64 tensors on `device` of arrays[key][rows] (2-D arrays cut to `width` columns). An array that two
    keys share (windows: `labels` is `input_ids`) is copied once and both keys get the same tensor."""
    pin = torch.device(device).type == "cuda"  # page-locked host memory: the copy overlaps the GPU's work
    copies, out = {}, {}
    for key, value in arrays.items():
        if id(value) not in copies:
            part = value[rows] if value.ndim == 1 else value[rows, :width]
            host = torch.from_numpy(np.ascontiguousarray(part, dtype=np.int64))
            copies[id(value)] = (host.pin_memory() if pin else host).to(device, non_blocking=True)
        out[key] = copies[id(value)]
    return out


def num_rows(source) -> int:
    return len(source["input_ids"])


class Evaluator:
    """Holds the fixed evaluation windows of each group and split; evaluates a model on them.

    `window_source(split, group, max_windows)` returns the rows as data.bundle's batch mapping (n rows
    spread over the split, all when None). `default_max_windows` bounds validation (--max_eval_samples) and
    `test_max_windows` the test split (--max_test_samples; None: the whole split, the reported metric)."""

    def __init__(self, groups, window_source, batch_size: int, device, autocast, default_max_windows=None,
                 test_max_windows=None, dist=None):
        self.groups = list(groups)
        self.window_source = window_source
        self.batch_size = batch_size
        self.device = device
        self.autocast = autocast
        self.default_max_windows = default_max_windows
        self.test_max_windows = test_max_windows
        self.dist = dist or Dist()  # under torchrun each rank evaluates a block of the rows
        self._cache = {}

    def windows(self, split, group, max_windows):
        """The fixed (n, L) evaluation windows of a group (cached)."""
        key = (split, group, max_windows)
        if key not in self._cache:
            self._cache[key] = self.window_source(split, group, max_windows)
        return self._cache[key]

    def losses(self, model, split: str, max_windows=None) -> np.ndarray:
        """Token-mean loss per group (float64 array ordered like `groups`); under torchrun the ranks'
        loss sums and token counts are added up, so every rank gets the same array."""
        if max_windows is None:
            max_windows = self.test_max_windows if split == "test" else self.default_max_windows
        sources = [self.windows(split, g, max_windows) for g in self.groups]
        # A sharded model (--fsdp) gathers its weights from every rank at every forward, so every rank must
        # run as many forwards as the rank with the largest block (the others add uncounted ones); its
        # gather buffers are reused by training, which tensors made in inference mode would forbid.
        lockstep = sharding.is_sharded(model)
        was_training = model.training
        model.eval()
        with torch.no_grad() if lockstep else torch.inference_mode():
            sums = self._group_sums(model, sources, lockstep)
        sums = self.dist.sum(sums)
        if was_training:
            model.train()
        return sums[:, 0] / np.maximum(sums[:, 1], 1.0)

    def _group_sums(self, model, sources: list, lockstep: bool) -> np.ndarray:
        """(loss sum, scored tokens) per group over this rank's block of all groups' rows.

        The groups' rows are evaluated as one sequence cut into batches of eval_batch_size, not group by
        group: a few windows per group (Aioli's probe evaluations) would otherwise make k small forwards,
        whose fixed cost per call dominates on a CPU."""
        picks = [(g, r) for g, source in enumerate(sources) for r in range(num_rows(source))]
        mine = self.dist.block(len(picks))
        most = math.ceil(len(picks) / self.dist.world) if lockstep else mine.stop - mine.start
        sums = np.zeros((len(sources), 2))
        for start in range(mine.start, mine.start + most, self.batch_size):
            if start >= mine.stop:  # lockstep: a forward whose loss is not counted
                token_losses(model, to_device(gather_rows(sources, picks[:1]), self.device), self.autocast)
                continue
            rows = picks[start:min(start + self.batch_size, mine.stop)]
            batch = to_device(gather_rows(sources, rows), self.device)
            losses, mask = token_losses(model, batch, self.autocast)
            per_row = torch.stack([(losses * mask).sum(dim=1), mask.sum(dim=1)], dim=1)  # one copy to the host
            np.add.at(sums, [g for g, _ in rows], per_row.double().cpu().numpy())
        return sums


def summarize(groups, val=None, test=None) -> dict:
    """Per-group losses and perplexities plus the averages written to results.json."""
    out = {}
    for split, losses in (("val", val), ("test", test)):
        if losses is None:
            continue
        out[f"{split}_loss"] = {g: float(x) for g, x in zip(groups, losses)}
        out[f"{split}_perplexity"] = {g: math.exp(min(float(x), 700.0)) for g, x in zip(groups, losses)}
        out[f"average_{split}_loss"] = float(np.mean(losses))
        out[f"average_{split}_perplexity"] = float(np.mean([math.exp(min(float(x), 700.0)) for x in losses]))
    return out

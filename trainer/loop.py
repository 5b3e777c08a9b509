"""THE training loop: the only place in the code base that does forward, backward, clip, optimizer
and schedule steps, logging, evaluation and checkpointing. Methods plug in through
`methods/base.py`; the loop never knows which method it runs.

Step semantics: `step` counts optimizer updates done. Iteration s (0 <= s < total) first runs the
evaluations that are due at s (the method's, then the periodic one every `eval_every` steps), then
draws the batch for the update s -> s+1. Checkpoints are taken right after update s+1 completes, so a
resumed run re-enters iteration s+1 exactly as the uninterrupted run did.
"""
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch

from errors import TrainingDiverged, UsageError
from methods.base import StepContext
from options import option, require_positive
from trainer import checkpoint as ckpt
from trainer import sharding
from trainer.distributed import Dist
from trainer.evaluation import summarize, to_device, token_losses


@dataclass(frozen=True)
class TrainOptions:
    """How long and on what batches the loop trains, and how often it evaluates."""

    selection_seed: int = option(0, "seed of everything in the run")
    max_steps: int = option(-1, "optimizer updates (required, or the demo's default)")
    n_epochs: int = option(1, "multiplies the total steps (as in the paper)")
    batch_size: Optional[int] = option(None, "sequences per optimizer update (default 4; demo 8)")
    gradient_accumulation_steps: int = option(1, "micro-batches per update; the batch is split, the update is "
                                              "the same")
    eval_batch_size: Optional[int] = option(None, "default: --batch_size")
    num_ckpts: int = option(1, "evaluate val every max_steps/num_ckpts steps (and at steps 0 and the end)")
    num_threads: Optional[int] = option(None, "torch CPU threads")
    device: Optional[str] = option(None, "cpu, cuda, cuda:1 ... (default: cuda if available)")

    def check(self):
        if self.max_steps is None or self.max_steps <= 0:
            raise UsageError("--max_steps: give the number of optimizer updates (a positive integer)")
        require_positive(self, "batch_size", "eval_batch_size", "n_epochs", "num_ckpts", "gradient_accumulation_steps",
                         "num_threads")
        if self.batch_size % self.gradient_accumulation_steps:
            raise UsageError(f"--gradient_accumulation_steps {self.gradient_accumulation_steps} must divide "
                             f"--batch_size {self.batch_size}")


@dataclass
class Trainer:
    model: Any
    optimizer: Any
    scheduler: Any
    sampler: Any
    method: Any
    evaluator: Any
    groups: list
    device: Any
    autocast: Callable
    total_steps: int
    batch_size: int
    context_length: int
    run_dir: Any  # trainer.run_dir.RunDir: checkpoints and artefacts go there
    metrics: Any  # trainer.outputs.MetricsLog
    grad_accum: int = 1
    eval_every: int = 0
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    break_steps: Optional[int] = None
    log_every: int = 10
    progress: bool = True
    seed: int = 0
    run_name: str = ""
    services: dict = field(default_factory=dict)
    dist: Dist = field(default_factory=Dist)  # this process's rank in a torchrun job (world 1: alone)
    train_model: Any = None  # what the update runs forward through: the model, or its DDP / compiled wrapper
    flops_per_token: float = 0.0  # training FLOPs per token (trainer.models.flops_per_token), for MFU
    peak_flops: Optional[float] = None  # the job's peak FLOP/s (all ranks); None: no MFU in the metrics
    tokenizer_file: Optional[str] = None  # the data's tokenizer.json, saved beside the model (--save_model)
    # state that checkpoints carry
    step: int = 0
    tokens: int = 0
    val_history: list = field(default_factory=list)
    weights_trajectory: list = field(default_factory=list)

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict:
        return ckpt.numpy_free({
            "tokens": self.tokens, "sampler": self.sampler.state_dict(), "method": self.method.state_dict(),
            "val_history": self.val_history, "weights_trajectory": self.weights_trajectory,
        })

    def restore(self, path, restore_method=True) -> dict:
        """Load a checkpoint (model, optimizer, scheduler, sampler, method, histories, RNGs)."""
        state = ckpt.load_checkpoint(path, self.model, self.optimizer, self.scheduler)
        self.step, self.tokens = int(state["step"]), int(state["tokens"])
        self.sampler.load_state_dict(state["sampler"])
        if restore_method:
            self.method.load_state_dict(state["method"])
            self.val_history = state["val_history"]
            self.weights_trajectory = state["weights_trajectory"]
        return state

    def model_to_save(self):
        """The model as --save_model writes it: a sharded one (--fsdp) is gathered into a plain copy on rank 0
        (a collective: every rank calls this; the others get None)."""
        return sharding.unsharded_copy(self.model) if sharding.is_sharded(self.model) else self.model

    def save(self):
        state = self.state()
        self.dist.check_same({key: state[key] for key in ("tokens", "sampler", "method")}, "training state")
        self.run_dir.save_checkpoint(self.step, self.model, self.optimizer, self.scheduler, state,
                                     keep=self.keep_checkpoints, dist=self.dist)
        self.run_dir.write_artifacts(self.method.artifacts())

    # -- pieces of one iteration ---------------------------------------------------------------
    def _context(self, micro=0) -> StepContext:
        return StepContext(step=self.step, total_steps=self.total_steps, groups=self.groups,
                           micro_batch_index=micro, num_micro_batches=self.grad_accum,
                           token_losses=lambda model, batch: token_losses(model, batch, self.autocast),
                           val_batch=self.services.get("val_batch"), services=self.services,
                           lr=self.scheduler.get_last_lr()[0], sum_over_ranks=self.dist.sum)

    def _evaluations(self, record: dict):
        s = self.step
        if self.method.wants_eval(s):
            losses = self.evaluator.losses(self.model, "val", self.method.eval_max_windows)
            self.method.observe_eval(s, losses)
            record["method_val_loss"] = dict(zip(self.groups, losses.tolist()))
        periodic = self.eval_every and s % self.eval_every == 0
        if periodic or s == self.break_steps:
            losses = self.evaluator.losses(self.model, "val")
            self.val_history.append({"step": s, "val_loss": dict(zip(self.groups, losses.tolist()))})
            record["val_loss"] = self.val_history[-1]["val_loss"]

    def _set_mixture(self):
        mix = self.method.mixture(self.step)
        weights = np.asarray(mix.weights, dtype=np.float64)
        if not np.array_equal(weights, self.sampler.weights):
            self.sampler.set_weights(weights)
        current = dict(zip(self.groups, self.sampler.weights.tolist()))
        if not self.weights_trajectory or self.weights_trajectory[-1]["weights"] != current:
            self.weights_trajectory.append({"step": self.step, "weights": current})
        return mix

    def _update(self, mix) -> torch.Tensor:
        """One optimizer update on the batch for this step; returns the (detached) training loss (this
        rank's part of it: the ranks' parts sum to the world size times the batch's loss)."""
        glob = self.sampler.next_batch(exact=True if mix.exact else None)  # the global batch, on every rank
        self.tokens += int(glob["attention_mask"].sum()) if "attention_mask" in glob else glob["input_ids"].size
        scored_all = float((glob["labels"][:, 1:] != -100).sum())
        batch = to_device(glob, self.device, rows=self.dist.block(self.batch_size))  # this rank's slice
        # Each micro-batch's mean loss is weighted by its share of the global batch's scored tokens (times
        # the world size, which DDP's gradient average divides out again), so the accumulated gradient is
        # the gradient of the whole batch's token mean, whatever the number of ranks.
        scored = (batch["labels"][:, 1:] != -100).sum(dim=1).float()
        micro = self.batch_size // self.dist.world // self.grad_accum
        total = torch.zeros((), device=self.device)
        wrapped = self.train_model is not None and not self.method.writes_gradients
        model = self.train_model if wrapped else self.model
        for m in range(self.grad_accum):
            part = {key: value[m * micro:(m + 1) * micro] for key, value in batch.items()}
            share = scored[m * micro:(m + 1) * micro].sum() / max(scored_all, 1.0) * self.dist.world
            last = m == self.grad_accum - 1
            # gradients are exchanged over the ranks once, at the last micro-batch
            with sharding.accumulating(model, last, wrapped and self.dist.active):
                loss = self.method.training_loss(model, part, self._context(m)) * share
                if loss.requires_grad:  # else the method wrote the gradients itself (methods/base.py)
                    loss.backward()
            total += loss.detach()
        norm = sharding.local_value(torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0))
        # a non-finite gradient makes finite-loss weights garbage: fold it into the logged loss so that
        # the next check stops the run before such weights are checkpointed
        total = total + torch.where(torch.isfinite(norm), 0.0, float("nan"))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def _check_finite(self, value: float):
        if math.isfinite(value):
            return
        last = self.run_dir.latest_checkpoint()
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was written before it"
        raise TrainingDiverged(f"training loss became {value} at step {self.step}; stopped ({kept}); lower --lr "
                               "or raise --warmup_steps")

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> dict:
        from tqdm import tqdm

        bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.progress, unit="step",
                   dynamic_ncols=True, leave=False)
        loss_sum, loss_count = torch.zeros((), device=self.device), 0
        window_start, window_tokens = time.perf_counter(), 0
        self.model.train()
        while self.step < self.total_steps:
            record = {}
            self._evaluations(record)
            if self.step == self.break_steps:
                return self.finish(status="break")
            mix = self._set_mixture()
            tokens_before = self.tokens
            loss_sum += self._update(mix)
            loss_count += 1
            self.method.after_step(self.step + 1, self._context())
            self.step += 1
            window_tokens += self.tokens - tokens_before
            bar.update(1)
            # the break step too: its loss is checked before finish() saves the parent state
            due_log = self.step % self.log_every == 0 or self.step in (self.total_steps, self.break_steps)
            due_ckpt = self.checkpoint_every and self.step % self.checkpoint_every == 0
            if due_log or due_ckpt or record:
                train_loss = float(self.dist.sum(np.array([float(loss_sum)]))[0]) / self.dist.world / max(loss_count, 1)
                self._check_finite(train_loss)
                elapsed = time.perf_counter() - window_start
                line = {"step": self.step, "tokens": self.tokens, "lr": self.scheduler.get_last_lr()[0],
                        "train_loss": train_loss, "weights": self.weights_trajectory[-1]["weights"],
                        "tokens_per_s": window_tokens / max(elapsed, 1e-9)}
                if self.peak_flops:
                    line["mfu"] = line["tokens_per_s"] * self.flops_per_token / self.peak_flops
                # evaluations ran before this update, at step - 1
                line.update(record)
                if record:
                    line["eval_step"] = self.step - 1
                extras = self.method.log_values()
                if extras:
                    line["method"] = extras
                self.metrics.write(line)
                bar.set_postfix(loss=f"{train_loss:.3f}", tok_s=f"{line['tokens_per_s']:.0f}")
                loss_sum, loss_count = torch.zeros((), device=self.device), 0
                window_start, window_tokens = time.perf_counter(), 0
            if due_ckpt and self.step < self.total_steps:
                self.save()
        bar.close()
        return self.finish(status="break" if self.step == self.break_steps else "complete")

    def finish(self, status: str) -> dict:
        """Final evaluations and the results dict. status: complete, break (val only, and the full
        state saved for child runs) or evaluated (--use_saved_model: no training)."""
        self.dist.check_same({"weights": self.weights_trajectory, "method": self.method.state_dict()}, "mixture")
        if not self.val_history or self.val_history[-1]["step"] != self.step:
            losses = self.evaluator.losses(self.model, "val")
            self.val_history.append({"step": self.step, "val_loss": dict(zip(self.groups, losses.tolist()))})
        val = np.array([self.val_history[-1]["val_loss"][g] for g in self.groups])
        test = self.evaluator.losses(self.model, "test") if status != "break" else None
        self.metrics.write({"step": self.step, "tokens": self.tokens, "final": status,
                            "val_loss": dict(zip(self.groups, val.tolist())),
                            **({"test_loss": dict(zip(self.groups, test.tolist()))} if test is not None else {})})
        if status == "break":
            self.save()  # the parent state that children start from
        elif status == "complete":
            self.run_dir.write_artifacts(self.method.artifacts())
            self.metrics.log_tables(self.method.tables(), step=self.step)
        results = {"run_name": self.run_name, "method": self.method.name, "seed": self.seed, "status": status,
                   "step": self.step, "tokens": self.tokens, "groups": self.groups}
        results.update(summarize(self.groups, val, test))
        results.update({"final_weights": self.weights_trajectory[-1]["weights"] if self.weights_trajectory else
                        dict(zip(self.groups, self.sampler.weights.tolist())),
                        "weights_trajectory": self.weights_trajectory, "val_history": self.val_history})
        return ckpt.numpy_free(results)

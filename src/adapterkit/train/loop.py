"""The training loop: AdamW/SGD with warmup, accumulation, early stopping, resume.

Why our own loop rather than ``transformers.Trainer``: Trainer checkpoints and
resumes the whole model state (90 MB per checkpoint for MiniLM, gigabytes for an
LLM) and knows nothing of heads that live beside the base; adapter-only,
pickle-free checkpoints would mean overriding most of its saving and loading.
This loop is short enough to read in one sitting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm
from transformers import get_scheduler

from adapterkit.model import AdaptedModel
from adapterkit.tasks.base import Task
from adapterkit.train.checkpoint import TrainerState, load_checkpoint, save_checkpoint
from adapterkit.train.config import TrainConfig
from adapterkit.train.evaluate import evaluate_features, task_forward

LOG_EVERY = 20  # optimizer steps between TensorBoard/progress updates

# Our schedule names to transformers'. Each warms up first; "constant" always did, so it
# is transformers' constant_with_warmup, not its warmup-less "constant".
SCHEDULER_NAMES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


@dataclass
class FitResult:
    """What training produced."""

    state: TrainerState
    train_seconds: float
    best_path: Path | None


def _no_decay(name: str) -> bool:
    return name.endswith("bias") or "LayerNorm" in name or "norm" in name.split(".")[-2:][0].lower()


def make_optimizer(model: AdaptedModel, config: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """AdamW or SGD over the trainable parameters; no weight decay on biases and norms."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not _no_decay(n)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in named if _no_decay(n)], "weight_decay": 0.0},
    ]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    return torch.optim.AdamW(groups, lr=lr)


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """transformers' schedule: linear warmup from 0 over ``warmup_ratio`` of the steps, then
    linear/cosine decay to 0 (or constant).

    A LambdaLR whose state dict holds only numbers, so checkpoints stay JSON.
    """
    return get_scheduler(
        SCHEDULER_NAMES[config.scheduler],
        optimizer,
        num_warmup_steps=int(config.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )


def autocast_context(config: TrainConfig, device: torch.device):
    """The autocast context for the configured precision on ``device``."""
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def epoch_batches(
    n: int, batch_size: int, seed: int, epoch: int, lengths: list[int] | None = None
) -> list[list[int]]:
    """The shuffled batches of one epoch; the same for the same seed and epoch (needed to resume).

    With ``lengths`` (tokens per example), batches are length-grouped as transformers'
    LengthGroupedSampler does: the shuffled order is cut into megabatches of 50
    batches, each sorted by length, and the batch order is shuffled again. Dynamic
    padding then pads far less; each batch's loss is unchanged, only which examples
    share a batch differs.
    """
    generator = torch.Generator().manual_seed(seed * 10_007 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    if lengths is not None:
        mega = 50 * batch_size
        order = [
            i
            for start in range(0, n, mega)
            for i in sorted(order[start : start + mega], key=lambda j: -lengths[j])
        ]
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if lengths is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def fit(
    model: AdaptedModel,
    adapter: str,
    task: Task,
    train_features: list[dict[str, Any]],
    validation: tuple[list[dict[str, Any]], list[Any]] | None,
    config: TrainConfig,
    lr: float,
    run_dir: Path,
    resume: bool = False,
    include_base: bool = False,
    log: Callable[[str], None] = print,
    group_by_length: bool = False,
) -> FitResult:
    """Train adapter ``name`` (already made trainable) and keep the best checkpoint by validation.

    ``validation`` is (encoded features, references) or None (then the last epoch is kept).
    ``group_by_length`` batches examples of similar length together (see
    :func:`epoch_batches`): less padding, so more real tokens per second.
    """
    device = next(model.parameters()).device
    optimizer = make_optimizer(model, config, lr)
    batches_per_epoch = math.ceil(len(train_features) / config.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accumulation)
    scheduler = make_scheduler(optimizer, config, steps_per_epoch * config.epochs)
    last_path, best_path = run_dir / "checkpoints" / "last", run_dir / "checkpoints" / "best"
    state = TrainerState()
    if resume and last_path.exists():
        state = load_checkpoint(last_path, model, adapter, optimizer, scheduler)
        log(
            f"resumed from {last_path}: epoch {state.epoch}, batch {state.batches_done}, step {state.global_step}"
        )
    elif resume:
        log(f"--resume: no checkpoint in {last_path}, starting from scratch")
    writer = SummaryWriter(str(run_dir / "tensorboard"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    started = time.perf_counter()

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, model, adapter, optimizer, scheduler, state, include_base)

    while state.epoch < config.epochs and not state.stopped_early:
        model.train()
        lengths = [len(f.get("input_ids", ())) for f in train_features] if group_by_length else None
        batches = epoch_batches(
            len(train_features), config.batch_size, config.seed, state.epoch, lengths
        )
        bar = tqdm(
            total=len(batches),
            initial=state.batches_done,
            desc=f"epoch {state.epoch + 1}/{config.epochs}",
            unit="batch",
            mininterval=2.0,
            leave=False,
        )
        # A resumed epoch starts at batch batches_done: its mean loss is over the batches run here.
        running, ran = 0.0, 0
        for index in range(state.batches_done, len(batches)):
            batch = {
                k: v.to(device)
                for k, v in task.collate([train_features[i] for i in batches[index]]).items()
            }
            with autocast_context(config, device):
                loss = task.loss(task_forward(model, adapter, task, batch), batch)
            (loss / config.grad_accumulation).backward()
            running += loss.item()
            ran += 1
            state.batches_done = index + 1
            if state.batches_done % config.grad_accumulation == 0 or state.batches_done == len(
                batches
            ):
                if config.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state.global_step += 1
                if state.global_step % LOG_EVERY == 0:
                    writer.add_scalar("train/loss", loss.item(), state.global_step)
                    writer.add_scalar("train/lr", scheduler.get_last_lr()[0], state.global_step)
                if config.save_steps and state.global_step % config.save_steps == 0:
                    checkpoint(last_path)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        bar.close()
        row: dict[str, Any] = {
            "epoch": state.epoch + 1,
            "step": state.global_step,
            # nan: resumed after the epoch's last batch, so no loss of it was seen here
            "train_loss": running / ran if ran else math.nan,
        }
        state.epoch += 1
        state.batches_done = 0
        if validation is not None:
            metrics, eval_loss, _ = evaluate_features(
                model, adapter, task, *validation, config.eval_batch_size
            )
            row.update(
                {
                    "eval_loss": eval_loss,
                    **{f"eval_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))},
                }
            )
            score = float(metrics[task.primary_metric])
            # Perplexity-like metrics improve downwards (the task says so).
            sign = 1.0 if getattr(task, "greater_is_better", True) else -1.0
            improved = state.best_metric is None or sign * score > sign * state.best_metric
            if improved:
                state.best_metric, state.best_epoch, state.bad_evals = score, state.epoch, 0
                checkpoint(best_path)
            else:
                state.bad_evals += 1
                state.stopped_early = state.bad_evals >= config.patience
            log(
                f"epoch {state.epoch}: train loss {row['train_loss']:.4f}, validation {task.primary_metric} "
                f"{score:.4f}{' (best)' if improved else ''}"
            )
        else:
            log(f"epoch {state.epoch}: train loss {row['train_loss']:.4f}")
        for key, value in row.items():
            if key not in ("epoch", "step") and isinstance(value, (int, float)):
                writer.add_scalar(key.replace("_", "/", 1), value, state.global_step)
        state.history.append(row)
        checkpoint(last_path)
        if state.stopped_early:
            log(f"early stopping: no improvement in {config.patience} evaluations")
    writer.close()

    if validation is not None and best_path.exists():
        from adapterkit import bundle

        _, weights = bundle.read_bundle(best_path)
        model.load_weights(adapter, weights, best_path)
        log(
            f"restored the best checkpoint (epoch {state.best_epoch}, {task.primary_metric} {state.best_metric:.4f})"
        )
    return FitResult(
        state, time.perf_counter() - started, best_path if best_path.exists() else None
    )

"""A job's optimizer, learning-rate schedule and autocast context."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from transformers import get_scheduler

from adapterkit.train.config import TrainConfig

# Our schedule names to transformers'. Each warms up first; "constant" always did, so it
# is transformers' constant_with_warmup, not its warmup-less "constant".
SCHEDULER_NAMES = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


def _no_decay(name: str) -> bool:
    return name.endswith("bias") or "LayerNorm" in name or "norm" in name.split(".")[-2:][0].lower()


def make_optimizer(
    named: list[tuple[str, torch.nn.Parameter]], config: TrainConfig, lr: float
) -> torch.optim.Optimizer:
    """AdamW or SGD over ``(name, parameter)`` pairs; no weight decay on biases and norms."""
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

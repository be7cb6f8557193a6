"""A job's optimizer, learning-rate schedule and autocast context."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import partial

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from adapterkit.precision import autocast_dtype, resolve_precision
from adapterkit.train.config import TrainConfig


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


def schedule_factor(step: int, *, name: str, warmup: int, total: int) -> float:
    """The learning rate's factor at optimizer step ``step``: transformers' schedule of that
    name, to the float ("constant" is its constant_with_warmup: ours always warmed up).
    Its get_scheduler is not imported: that module imports transformers.trainer_utils, which
    imports peft and bitsandbytes when they are installed, seconds at every start of a run."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    if name == "constant":
        return 1.0
    if name == "linear":
        return max(0.0, float(total - step) / float(max(1, total - warmup)))
    progress = float(step - warmup) / float(max(1, total - warmup))
    # Half a cosine cycle, written as transformers multiplies it (num_cycles 0.5, times 2)
    # so that every factor is the same float.
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """transformers' schedule: linear warmup from 0 over ``warmup_ratio`` of the steps, then
    linear/cosine decay to 0 (or constant).

    A LambdaLR whose state dict holds only numbers, so checkpoints stay JSON.
    """
    factor = partial(
        schedule_factor,
        name=config.scheduler,
        warmup=int(config.warmup_ratio * total_steps),
        total=total_steps,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@contextmanager
def _cpu_autocast(dtype: torch.dtype) -> Iterator[None]:
    """Autocast on the CPU, attention on SDPA's math kernel. In low precision the CPU's
    fused (flash) kernel trains 1.3-1.9x slower than the math one (its backward; its
    forward is faster, so evaluation keeps it): benchmarks/attention_kernels.py. The math
    kernel is also the one any attention dropout above 0 runs, so this changes the speed of
    ``--attention-dropout 0`` runs only, not their numbers beyond float rounding."""
    with torch.autocast(device_type="cpu", dtype=dtype), sdpa_kernel(SDPBackend.MATH):
        yield


def autocast_context(config: TrainConfig, device: torch.device):
    """The training step's autocast context for the configured precision on ``device``."""
    dtype = autocast_dtype(resolve_precision(config.precision, device))
    if dtype is None:
        return nullcontext()
    if device.type == "cpu":
        return _cpu_autocast(dtype)
    return torch.autocast(device_type=device.type, dtype=dtype)

"""A job's optimizer, learning-rate schedule and autocast context."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
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


CPU_BF16_ENV = "ADAPTERKIT_CPU_BF16"
"""Set to 0 or 1 to say whether this CPU's native bf16 counts for ``--precision auto``
(the test suite sets 0, so its numerics do not depend on the machine it runs on)."""


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        return frozenset(Path("/proc/cpuinfo").read_text().split())
    except OSError:  # not Linux: no way to tell here, so the safe fp32
        return frozenset()


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (avx512_bf16 or AMX), so autocast pays;
    without those instructions bf16 matmuls are emulated and slower than fp32."""
    said = os.environ.get(CPU_BF16_ENV)
    if said in ("0", "1"):
        return said == "1"
    return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run trains in: ``auto`` is bf16 autocast on a CUDA GPU that
    supports it and on a CPU with native bf16 (1.5-1.8x faster there, and measured to
    cost no quality at 3 seeds on TREC-6 and CoNLL-2003: docs/switches.md), else fp32."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


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
    precision = resolve_precision(config.precision, device)
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cpu":
        return _cpu_autocast(dtype)
    return torch.autocast(device_type=device.type, dtype=dtype)

"""Which precision a run computes in, and the inference context that applies it.

``auto`` is bf16 autocast where the device computes bf16 natively: a CUDA GPU that
supports it, or a CPU with avx512_bf16 or AMX. Training takes its autocast from
:func:`adapterkit.train.optim.autocast_context`; evaluation, ``predict`` and ``serve``
take theirs from :func:`inference_context`.
"""

from __future__ import annotations

import functools
import os
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Protocol

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

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
    """The precision ``precision`` means on ``device``: ``auto`` is bf16 autocast on a CUDA
    GPU that supports it and on a CPU with native bf16, else fp32. Measured there: training
    1.5-1.8x faster at no quality cost at 3 seeds (docs/switches.md); evaluation 1.5-1.6x
    faster with 99.6 % or more of the predictions unchanged, one forward 1.4x faster at
    batch 16 and even with fp32 at batch 1 (docs/bf16_inference.md)."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None: fp32, no autocast)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


class StoresLow(Protocol):
    """A model that can keep its frozen layers in a low dtype (``AdaptedModel``)."""

    def store_base_low(self, dtype: torch.dtype) -> int: ...


def store_for_inference(model: StoresLow, precision: str, device: torch.device) -> None:
    """Keep a model's frozen linear layers in the low dtype ``precision`` resolves to on
    ``device`` (``AdaptedModel.store_base_low``), so inference autocast need not cast them
    on every call; nothing for fp32. For models that only infer (``predict``, ``serve``)."""
    dtype = autocast_dtype(resolve_precision(precision, device))
    if dtype is not None:
        model.store_base_low(dtype)


def inference_context(precision: str, device: torch.device) -> AbstractContextManager:
    """Autocast for evaluation and serving forwards in ``precision`` (resolved on
    ``device``); a no-op for fp32. Attention keeps PyTorch's own kernel choice: in
    evaluation the fused kernel is the faster one (benchmarks/attention_kernels.py)."""
    dtype = autocast_dtype(resolve_precision(precision, device))
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)

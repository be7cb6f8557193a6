"""The adapters' shared arithmetic: picking each row's weights, and adding a small
projection into the frozen layer's output with as few full-size passes, and as few
dispatched ops, as the shapes allow.

Shared by the methods' modules (``methods/<name>/layer.py``); nothing here knows a method.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def matmul_input(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` as an adapter's own matrix multiplies take it: in the adapter weights' ``dtype``,
    except under autocast, which casts for each multiply itself. There a cast to the
    weights' fp32 first is a full-size copy that autocast then undoes: on a bf16-stored
    MiniLM, two of them per LoRA layer (the inputs of the attention output and of the FFN
    down-projection arrive in bf16) made copies the largest cost of a mixed serving batch."""
    if torch.is_autocast_enabled(x.device.type):
        return x
    return x.to(dtype)


def gather_per_row(tensors: list[torch.Tensor], slot: torch.Tensor) -> torch.Tensor:
    """Stack one tensor per module plus a zero slot, and pick each row's: (B, *shape).

    ``slot`` (B,) indexes ``tensors``; -1 picks the zeros, so those rows get no update.
    Shared by the ``forward_rows`` implementations.
    """
    if slot.device.type == "cpu" and not torch.compiler.is_compiling():
        # Picking each row's tensor directly copies B tensors once, where stacking all N
        # and then indexing copied twice (a 16-adapter LoRA batch of MiniLM went from
        # 0.74x to 0.78-0.81x of one adapter's time). On a GPU, reading the slots back
        # would wait for the device.
        rows = slot.tolist()
        zero = torch.zeros_like(tensors[0]) if -1 in rows else None
        return torch.stack([tensors[i] if i >= 0 else zero for i in rows])
    stacked = torch.stack([*tensors, torch.zeros_like(tensors[0])])  # (N+1, *shape)
    return stacked[slot]  # -1 indexes from the end: the zero slot


BIAS_COLUMN_FROM = 96
"""From this many rows, :func:`add_projection` adds the bias inside the matrix multiply (two
small concatenations); below it, one separate in-place add of the bias is cheaper than
dispatching the concatenations (0.72x the time at 24 fp32 rows). From about 100 rows the
two are even, until in bf16 the add's full-size pass costs more: at 640 and 2,000 rows the
column takes 0.77x and 0.55x its time; in fp32 they stay within 10 % of each other
(docs/few_rows.md, ``python -m benchmarks.few_rows``)."""


def add_projection(
    base_out: torch.Tensor,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    scale: float,
    owned: bool = False,
) -> torch.Tensor:
    """``base_out + scale * (hidden @ weight.T + bias)`` as one ``addmm``, into
    ``base_out`` itself when ``owned`` (see :attr:`AdapterModule.owns_output`).

    The up-projection, its scaling and the residual add would each make a full-size
    (B, T, C) pass; here the matrix multiply's epilogue does all three. The bias rides
    along as a column of ones on ``hidden`` (width r + 1: small), except for a few rows
    (see :data:`BIAS_COLUMN_FROM`). The caller checks that ``hidden`` and ``base_out``
    share a dtype (autocast gives both its own).
    """
    rows = hidden.reshape(-1, hidden.shape[-1])
    flat = base_out.reshape(-1, base_out.shape[-1])
    apart = bias is not None and rows.shape[0] < BIAS_COLUMN_FROM
    if bias is not None and not apart:
        rows = torch.cat([rows, rows.new_ones(rows.shape[0], 1)], dim=1)
        weight = torch.cat([weight, bias.unsqueeze(1)], dim=1)
    weight = weight.to(base_out.dtype)  # autocast's own cast of the small weight, made here
    # so the add may go in place (in-place ops skip autocast)
    if owned and _may_write(flat, rows, weight):
        added = flat.addmm_(rows, weight.T, alpha=scale)
    else:
        added = torch.addmm(flat, rows, weight.T, alpha=scale)
    if apart:  # the output is fresh here either way, so the bias goes in place
        added.add_(bias.to(added.dtype), alpha=scale)
    return added.view(base_out.shape)


def _may_write(base_out: torch.Tensor, *inputs: torch.Tensor) -> bool:
    """Whether the adapter may add into the frozen layer's fresh output in place.

    Only where autograd records nothing (inference): out of place, ``addmm`` first copies
    the whole (B, T, C) output into a new buffer. On MiniLM (CPU) that saves 6 % of a LoRA
    forward at batch 64 and is within noise at batch 1 and 16 (docs/inference_add.md).
    """
    if any(t.dtype != base_out.dtype for t in inputs):
        return False  # in-place ops skip autocast: out of place, it casts the fp32 weight
    return not torch.is_grad_enabled() or not any(t.requires_grad for t in (base_out, *inputs))


def row_scalings(scalings: list[float], slot: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Each row's module scaling (0 for slot -1 rows), shaped (B, 1, 1) to multiply (B, T, r)."""
    values = torch.tensor([*scalings, 0.0], dtype=dtype, device=slot.device)
    return values[slot].view(-1, 1, 1)  # -1 picks the 0 at the end


def add_projection_rows(
    base_out: torch.Tensor,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    scalings: list[float],
    slot: torch.Tensor,
    owned: bool = False,
) -> torch.Tensor:
    """``base_out + s_row * (hidden @ W_row.T + b_row)`` with each row's own weights and
    module scaling (0 for slot -1 rows): the per-row twin of :func:`add_projection`.

    ``hidden`` is (B, T, r), ``weight`` (B, C, r), ``bias`` (B, C) or None. The scaling
    multiplies the small (B, T, r) ``hidden`` and the residual add rides in ``baddbmm``'s
    epilogue, so no full-size (B, T, C) pass is made besides the matmul's own (a separate
    scale and add made two).
    """
    scale = row_scalings(scalings, slot, hidden.dtype)
    rows = hidden * scale
    if bias is not None:  # the bias as a column of the weights, times a column of scales
        rows = torch.cat([rows, scale.expand(-1, rows.shape[1], 1)], dim=2)
        weight = torch.cat([weight, bias.unsqueeze(2)], dim=2)
    if rows.dtype != base_out.dtype:  # a low-precision base without autocast: add in its dtype
        return base_out + torch.bmm(rows, weight.transpose(1, 2)).to(base_out.dtype)
    weight = weight.to(rows.dtype)  # under autocast: its cast of the gathered weights, made here
    if owned and _may_write(base_out, rows, weight):
        return base_out.baddbmm_(rows, weight.transpose(1, 2))
    return torch.baddbmm(base_out, rows, weight.transpose(1, 2))


FP32_ROWS_BELOW = 64
"""Below this many rows (tokens in the batch), an adapter's own small matrix multiplies run
in fp32 although CPU autocast asks for bf16 (:func:`few_rows_in_fp32`): on an AMX CPU a
bf16 matrix multiply with a side of 8 to 48 has a fixed cost that fp32 does not. A MiniLM
forward with the base stored in bf16 (docs/few_rows.md, ``python -m benchmarks.few_rows``):
LoRA 1.08x faster with the fp32 update at 16 rows, 1.05x at 32 to 48, even at 64 to 96
(1.03, 0.98), 0.91x at 256; Houlsby 1.02-1.06x up to 128 rows and even from 160."""


def few_rows_in_fp32(x: torch.Tensor) -> bool:
    """Whether an adapter should compute its update in fp32 with autocast off: inference
    (no autograd) under CPU autocast, on fewer than :data:`FP32_ROWS_BELOW` rows. The
    update is then more exact than bf16's, and added into the bf16 output in one pass."""
    return (
        x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and torch.is_autocast_enabled("cpu")
        and x.numel() < FP32_ROWS_BELOW * x.shape[-1]
    )


def add_in_fp32(
    base_out: torch.Tensor, update: Callable[[], torch.Tensor], owned: bool
) -> torch.Tensor:
    """``base_out + update()`` where ``update`` runs with autocast off (its matrix
    multiplies in its operands' fp32) and gives the update as (rows, C), for
    :func:`few_rows_in_fp32`; in place when the caller ``owned`` the fresh output (no
    autograd records this path)."""
    with torch.autocast("cpu", enabled=False):
        delta = update().to(base_out.dtype).view(base_out.shape)
    return base_out.add_(delta) if owned else base_out + delta

"""The bottleneck adapter module.

Sequential (Houlsby/Pfeiffer), applied to a layer output ``h`` of shape (B, T, C)::

    h' = h + s * dropout(W_up · act(W_down · h))        W_down: (r, C), W_up: (C, r)

Parallel (He et al. 2021), reading the FFN block input ``x`` (B, T, C_in)::

    h' = h + s * dropout(W_up · act(W_down · x))        W_down: (r, C_in), W_up: (C, r)

``W_up`` and its bias start at zero, so a fresh adapter returns ``h`` exactly.
``W_down`` uses BERT's normal(0, 0.02) initialisation, as AdapterHub does.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from adapterkit.methods.base import AdapterModule
from adapterkit.methods.projection import (
    add_in_fp32,
    add_projection,
    add_projection_rows,
    few_rows_in_fp32,
    gather_per_row,
    matmul_input,
)

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


class BottleneckAdapter(AdapterModule):
    """Down-projection → non-linearity → up-projection, added to the layer output."""

    owns_output = True

    def __init__(
        self,
        source_features: int,
        out_features: int,
        width: int,
        non_linearity: str = "relu",
        dropout: float = 0.0,
        scaling: float = 1.0,
        parallel: bool = False,
    ) -> None:
        super().__init__()
        self.down = nn.Linear(source_features, width)
        self.act = _ACTIVATIONS[non_linearity]()
        self.up = nn.Linear(width, out_features)
        self.dropout = nn.Dropout(dropout)
        self.scaling = scaling
        self.parallel = parallel
        nn.init.normal_(self.down.weight, std=0.02)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(
        self,
        x: torch.Tensor,
        base_out: torch.Tensor,
        block_input: torch.Tensor | None,
        owned: bool = False,
    ) -> torch.Tensor:
        source = block_input if self.parallel else base_out
        assert source is not None, "parallel adapter called without the block input"
        dtype = base_out.dtype
        if not self.training and few_rows_in_fp32(source):
            weight_dtype = self.down.weight.dtype
            return add_in_fp32(base_out, lambda: self._update(source.to(weight_dtype)), owned)
        source = matmul_input(source, self.down.weight.dtype)
        hidden = self.act(F.linear(source, self.down.weight, self.down.bias))  # (B, T, width)
        if hidden.dtype == dtype and (self.dropout.p == 0 or not self.training):
            up = self.up
            return add_projection(base_out, hidden, up.weight, up.bias, self.scaling, owned)
        delta = self.up(hidden)  # (B, T, C)
        return base_out + (self.scaling * self.dropout(delta)).to(dtype)

    def _update(self, source: torch.Tensor) -> torch.Tensor:
        """``s · (W_up act(W_down source) + b_up)`` (eval mode: no dropout) as (rows, C),
        in ``source``'s dtype: two 2-D ``addmm``, the scaling in the second's alpha and beta."""
        rows = source.reshape(-1, source.shape[-1])
        hidden = self.act(torch.addmm(self.down.bias, rows, self.down.weight.T))
        return torch.addmm(
            self.up.bias, hidden, self.up.weight.T, beta=self.scaling, alpha=self.scaling
        )

    @classmethod
    def forward_rows(
        cls,
        modules: list[AdapterModule],
        slot: torch.Tensor,
        x: torch.Tensor,
        base_out: torch.Tensor,
        block_input: torch.Tensor | None,
        owned: bool = False,
    ) -> torch.Tensor | None:
        """Many adapters of one shape in one pass: each row gathers its own weights.

        Stacks the adapters' weights (A, r, C_src) / (A, C, r) with a zero slot for rows
        without an adapter, gathers one set per row and runs two batched matmuls, so a
        batch over 16 adapters costs about what one adapter does (the grouped path runs
        ~5 small ops per adapter per layer). Only in eval mode or without dropout, and
        only for adapters sharing width, activation, placement and dtype.
        """
        first = modules[0]
        same = all(
            isinstance(m, BottleneckAdapter)
            and m.down.weight.shape == first.down.weight.shape
            and m.down.weight.dtype == first.down.weight.dtype
            and type(m.act) is type(first.act)
            and m.parallel == first.parallel
            and (not m.training or m.dropout.p == 0.0)
            for m in modules
        )
        source = block_input if first.parallel else base_out
        if not same or source is None:
            return None
        dtype = first.down.weight.dtype
        w_down = gather_per_row([m.down.weight for m in modules], slot)  # (B, r, C_src)
        b_down = gather_per_row([m.down.bias for m in modules], slot)  # (B, r)
        w_up = gather_per_row([m.up.weight for m in modules], slot)  # (B, C, r)
        b_up = gather_per_row([m.up.bias for m in modules], slot)  # (B, C)
        source = matmul_input(source, dtype)
        hidden = torch.baddbmm(b_down.unsqueeze(1), source, w_down.transpose(1, 2))
        scalings = [m.scaling for m in modules]
        hidden = first.act(hidden)
        return add_projection_rows(base_out, hidden, w_up, b_up, scalings, slot, owned)

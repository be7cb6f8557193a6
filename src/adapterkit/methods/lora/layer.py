"""The LoRA module.

For a frozen layer ``y = W x + b`` with x: (B, T, in) and W: (out, in)::

    y' = W x + b + s · B (A dropout(x))       A: (r, in), B: (out, r), s = alpha / r

``A`` gets Kaiming-uniform initialisation and ``B`` starts at zero, so a fresh
LoRA leaves the layer unchanged. ``delta_weight()`` returns ``s · B A`` (out, in)
for exact merging into the frozen weight.
"""

from __future__ import annotations

import math

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


class LoraAdapter(AdapterModule):
    """Low-rank additive update of a linear layer's output."""

    owns_output = True

    mergeable = True

    def __init__(
        self, in_features: int, out_features: int, r: int, scaling: float, dropout: float
    ) -> None:
        super().__init__()
        self.lora_A = nn.Linear(in_features, r, bias=False)
        self.lora_B = nn.Linear(r, out_features, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.scaling = scaling
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(
        self,
        x: torch.Tensor,
        base_out: torch.Tensor,
        block_input: torch.Tensor | None,
        owned: bool = False,
    ) -> torch.Tensor:
        down = self.lora_A.weight
        if not self.training and few_rows_in_fp32(x):
            up = self.lora_B.weight
            rows = x.reshape(-1, x.shape[-1]).to(down.dtype)  # 2-D: mm, without matmul's reshapes
            return add_in_fp32(
                base_out, lambda: torch.mm(rows, down.T) * self.scaling @ up.T, owned
            )
        x = matmul_input(x, down.dtype)
        if self.training and self.dropout.p > 0:  # (no module calls where they do nothing:
            x = self.dropout(x)  # at batch 1 their dispatch is a visible share of the layer)
        low = F.linear(x, down)  # (B, T, r)
        if low.dtype == base_out.dtype:
            return add_projection(base_out, low, self.lora_B.weight, None, self.scaling, owned)
        return base_out + (self.scaling * self.lora_B(low)).to(base_out.dtype)

    def delta_weight(self) -> torch.Tensor:
        """The update ``s · B A`` as an (out, in) matrix."""
        return self.scaling * (self.lora_B.weight @ self.lora_A.weight)

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
        """Many LoRAs of one rank in one pass, each row with its own A and B (as Punica
        and S-LoRA batch them): two batched matmuls instead of a group of ops per LoRA.
        Only in eval mode or without dropout, for LoRAs sharing shapes and dtype."""
        if not cls.batchable(modules):
            return None
        low, b = cls.factor_rows(modules, slot, x)
        scalings = [m.scaling for m in modules]
        return add_projection_rows(base_out, low, b, None, scalings, slot, owned)

    @classmethod
    def batchable(cls, modules: list[AdapterModule]) -> bool:
        """Whether ``modules`` can run as one batched pass: all of this class, one rank and
        dtype, and in eval mode or without dropout."""
        first = modules[0]
        return all(
            isinstance(m, cls)
            and m.lora_A.weight.shape == first.lora_A.weight.shape
            and m.lora_A.weight.dtype == first.lora_A.weight.dtype
            and (not m.training or m.dropout.p == 0.0)
            for m in modules
        )

    @staticmethod
    def factor_rows(
        modules: list[AdapterModule], slot: torch.Tensor, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each row's ``A_row x`` (B, T, r), by one batched matmul, and its ``B_row``
        (B, out, r); zeros for slot -1 rows."""
        dtype = modules[0].lora_A.weight.dtype
        a = gather_per_row([m.lora_A.weight for m in modules], slot)  # (B, r, in)
        b = gather_per_row([m.lora_B.weight for m in modules], slot)  # (B, out, r)
        return torch.bmm(matmul_input(x, dtype), a.transpose(1, 2)), b

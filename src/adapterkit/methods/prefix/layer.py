"""The prefix-tuning module: learned keys or values of one attention projection.

Prefix tuning (Li & Liang 2021) prepends ``L`` learned key and value vectors to every
attention layer; each query attends to them as to ``L`` extra tokens before the real ones::

    K' = [P_k ; K]   (L + T, C_k)        V' = [P_v ; V]   (L + T, C_v)

A :class:`PrefixAdapter` sits on the key projection (its ``key`` part, ``P_k``: (L, C_k)),
on the value projection (``value``), or on both halves of a fused projection (GPT-2's
``c_attn``); ``C`` is the projection's width, heads times head size (the key/value heads
under GQA). It leaves its layer's output as it is: the attention function of
:mod:`adapterkit.methods.prefix.attention` reads the tables and prepends them.

While training, each table can come from a smaller start through an MLP
(the reparameterisation Li & Liang found steadier)::

    P = W_2 tanh(W_1 E + b_1) + b_2       E: (L, C), W_1: (H, C), W_2: (C, H)

and a saved bundle stores only ``P`` (:meth:`PrefixAdapter.bundle_tensors`).
"""

from __future__ import annotations

import torch
from torch import nn

from adapterkit.methods.base import AdapterModule

PARTS = ("key", "value")


class PrefixTable(nn.Module):
    """``L`` learned rows of one projection's output: direct, or through an MLP.

    Rows start as N(0, 1), as peft's prefix embeddings do; the MLP's layers take torch's
    default initialisation.
    """

    def __init__(self, length: int, width: int, hidden: int) -> None:
        super().__init__()
        if hidden:
            self.embedding = nn.Parameter(torch.randn(length, width))
            self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.Tanh(), nn.Linear(hidden, width))
        else:
            self.weight = nn.Parameter(torch.randn(length, width))

    def forward(self) -> torch.Tensor:
        """The table, (L, width)."""
        if hasattr(self, "mlp"):
            return self.mlp(self.embedding)
        return self.weight


class PrefixAdapter(AdapterModule):
    """The prefix keys and/or values of one projection layer, which it leaves unchanged."""

    routes_by_index = False  # its rows are read by name outside this layer

    def __init__(self, parts: dict[str, int], length: int, hidden: int) -> None:
        """``parts`` maps ``key``/``value`` to the width this layer supplies of it."""
        super().__init__()
        self.length = length
        self.parts = nn.ModuleDict(
            {part: PrefixTable(length, width, hidden) for part, width in parts.items()}
        )

    def forward(
        self, x: torch.Tensor, base_out: torch.Tensor, block_input: torch.Tensor | None
    ) -> torch.Tensor:
        return base_out  # the prefix acts inside attention, not on this layer's output

    @classmethod
    def forward_rows(
        cls,
        modules: list[AdapterModule],
        slot: torch.Tensor,
        x: torch.Tensor,
        base_out: torch.Tensor,
        block_input: torch.Tensor | None,
    ) -> torch.Tensor | None:
        return base_out

    def tables(self) -> dict[str, torch.Tensor]:
        """Each part's table, (L, width), computed through the MLP when there is one."""
        return {part: table() for part, table in self.parts.items()}

    def bundle_tensors(self) -> dict[str, torch.Tensor] | None:
        """The folded tables, keyed as the parameters of a prefix without the MLP."""
        if not any(hasattr(table, "mlp") for table in self.parts.values()):
            return None
        with torch.no_grad():
            return {f"parts.{part}.weight": t.detach().clone() for part, t in self.tables().items()}

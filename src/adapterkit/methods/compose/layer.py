"""The per-layer module of a composition: one sub-module per part, combined by mode.

For a wrapped layer with input ``x`` and output ``h`` (B, T, C), parts ``P_1 .. P_N``::

    stack:    h' = P_N(x, ... P_2(x, P_1(x, h)))      each part adapts the previous output
    average:  h' = mean_i P_i(x, h)
    fusion:   h' = FusionAttention(h, [P_i(x, h) - h]_i)

Parallel bottleneck parts read the tapped block input, passed to every part unchanged.
Parts loaded from bundles are frozen: :meth:`CompositionAdapter.trainable_parameters`
leaves them out, and their ``requires_grad`` starts off.
"""

from __future__ import annotations

import torch
from torch import nn

from adapterkit.methods.base import AdapterModule
from adapterkit.methods.compose.fusion import FusionAttention


class CompositionAdapter(AdapterModule):
    """Several adapter modules of one layer, stacked, averaged or fused."""

    def __init__(
        self, mode: str, parts: list[AdapterModule], trained: list[bool], features: int
    ) -> None:
        """Args:
        mode: ``stack``, ``average`` or ``fusion``.
        parts: The parts' modules for this layer, in order.
        trained: Per part, whether it trains with the composition (else it stays frozen).
        features: The layer's output width (the fusion's query, key and value width).
        """
        super().__init__()
        self.mode = mode
        self.parts = nn.ModuleList(parts)
        self.trained = list(trained)
        self.fusion = FusionAttention(features) if mode == "fusion" else None
        for part, trains in zip(self.parts, self.trained, strict=True):
            part.requires_grad_(trains)

    def forward(
        self, x: torch.Tensor, base_out: torch.Tensor, block_input: torch.Tensor | None
    ) -> torch.Tensor:
        if self.mode == "stack":
            out = base_out
            for part in self.parts:
                out = part(x, out, block_input)
            return out
        outs = [part(x, base_out, block_input) for part in self.parts]  # N x (B, T, C)
        if self.mode == "average":
            return torch.stack(outs).mean(dim=0)
        assert self.fusion is not None
        deltas = torch.stack([out - base_out for out in outs], dim=2)  # (B, T, N, C)
        return self.fusion(base_out, deltas)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """The fusion's parameters and those of parts trained with the composition."""
        frozen = tuple(f"parts.{i}." for i, trains in enumerate(self.trained) if not trains)
        return {n: p for n, p in self.named_parameters() if not n.startswith(frozen)}

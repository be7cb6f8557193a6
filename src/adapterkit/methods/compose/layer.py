"""The per-layer module of a composition: one sub-module per part, combined by mode.

For a wrapped layer with input ``x`` and output ``h`` (B, T, C), parts ``P_1 .. P_N``::

    stack:    h' = P_N(x, ... P_2(x, P_1(x, h)))      each part adapts the previous output
    average:  h' = mean_i P_i(x, h)
    fusion:   h' = FusionAttention(h, [P_i(x, h) - h]_i)

Parts may adapt different layers. On a layer, only the parts that adapt it run: a stack
skips the others, an average counts each of them as ``h`` (it leaves the layer as it is:
the mean of the parts' updates, an absent one's being 0), a fusion attends over those
present.

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
        self,
        mode: str,
        parts: dict[int, AdapterModule],
        trained: dict[int, bool],
        count: int,
        features: int,
    ) -> None:
        """Args:
        mode: ``stack``, ``average`` or ``fusion``.
        parts: The modules of the parts that adapt this layer, by their place (from 0)
            among all the composition's parts, in order.
        trained: Per part here, whether it trains with the composition (else it is frozen).
        count: How many parts the composition has (some may not adapt this layer).
        features: The layer's output width (the fusion's query, key and value width).
        """
        super().__init__()
        self.mode = mode
        # Keyed by place, so that a part's weights keep their name (parts.<place>.*)
        # whichever parts share the layer.
        self.parts = nn.ModuleDict({str(place): module for place, module in parts.items()})
        self.trained = {str(place): trains for place, trains in trained.items()}
        self.count = count
        self.fusion = FusionAttention(features) if mode == "fusion" else None
        for place, part in self.parts.items():
            part.requires_grad_(self.trained[place])

    def forward(
        self, x: torch.Tensor, base_out: torch.Tensor, block_input: torch.Tensor | None
    ) -> torch.Tensor:
        if self.mode == "stack":
            out = base_out
            for part in self.parts.values():
                out = part(x, out, block_input)
            return out
        outs = [part(x, base_out, block_input) for part in self.parts.values()]  # k x (B, T, C)
        if self.mode == "average":
            # A part that does not adapt this layer leaves it as it is: its output is base_out.
            outs += [base_out] * (self.count - len(outs))
            return torch.stack(outs).mean(dim=0)
        assert self.fusion is not None
        deltas = torch.stack([out - base_out for out in outs], dim=2)  # (B, T, k, C)
        return self.fusion(base_out, deltas)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """The fusion's parameters and those of parts trained with the composition."""
        frozen = tuple(f"parts.{place}." for place, trains in self.trained.items() if not trains)
        return {n: p for n, p in self.named_parameters() if not n.startswith(frozen)}

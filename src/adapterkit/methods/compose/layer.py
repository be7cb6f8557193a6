"""The per-layer module of a composition: one sub-module per part, combined by mode.

For a wrapped layer with input ``x`` and output ``h`` (B, T, C), parts ``P_1 .. P_N``::

    stack:    h' = P_N(x, ... P_2(x, P_1(x, h)))      each part adapts the previous output
    average:  h' = Σ_i w_i P_i(x, h)                   w_i = 1/N unless weights are given
    fusion:   h' = FusionAttention(h, [P_i(x, h) - h]_i)

Parts may adapt different layers. On a layer, only the parts that adapt it run: a stack
skips the others, an average counts each of them as ``h`` (it leaves the layer as it is:
the mean of the parts' updates, an absent one's being 0), a fusion attends over those
present.

Parallel bottleneck parts read the tapped block input, passed to every part unchanged.
DoRA parts get the frozen weight, as the host gives it to them alone. An IA3 part that
rescales the layer's input gets the frozen layer run on its own input (``F.linear`` on the
frozen weight; the host runs the layer once, on ``x``); in a stack it adds its update
``W (l ⊙ x) - W x`` to the output so far.

Parts loaded from bundles are frozen: :meth:`CompositionAdapter.trainable_parameters`
leaves them out, and their ``requires_grad`` starts off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adapterkit.methods.base import AdapterModule, BaseWeights
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
        weights: list[float] | None = None,
    ) -> None:
        """Args:
        mode: ``stack``, ``average`` or ``fusion``.
        parts: The modules of the parts that adapt this layer, by their place (from 0)
            among all the composition's parts, in order.
        trained: Per part here, whether it trains with the composition (else it is frozen).
        count: How many parts the composition has (some may not adapt this layer).
        features: The layer's output width (the fusion's query, key and value width).
        weights: ``average``: each part's weight (all ``count`` of them, summing to 1);
            None for the plain mean.
        """
        super().__init__()
        self.mode = mode
        # Keyed by place, so that a part's weights keep their name (parts.<place>.*)
        # whichever parts share the layer.
        self.parts = nn.ModuleDict({str(place): module for place, module in parts.items()})
        self.trained = {str(place): trains for place, trains in trained.items()}
        self.count = count
        self.weights = weights
        self.fusion = FusionAttention(features) if mode == "fusion" else None
        for place, part in self.parts.items():
            part.requires_grad_(self.trained[place])
        # Parts that rescale the layer's input (IA3 on the FFN) or read the frozen weight
        # (DoRA) need that weight: the host passes it when this module asks.
        self.reads_base = any(p.reads_base or p.adapts_input for p in self.parts.values())

    def forward(
        self,
        x: torch.Tensor,
        base_out: torch.Tensor,
        block_input: torch.Tensor | None,
        base: BaseWeights | None = None,
    ) -> torch.Tensor:
        if self.mode == "stack":
            out = base_out
            for part in self.parts.values():
                out = self._run_part(part, x, base_out, out, block_input, base)
            return out
        outs = [
            self._run_part(part, x, base_out, base_out, block_input, base)
            for part in self.parts.values()
        ]  # k x (B, T, C)
        if self.mode == "average":
            if self.weights is not None:
                return self._weighted(outs, base_out)
            # A part that does not adapt this layer leaves it as it is: its output is base_out.
            outs += [base_out] * (self.count - len(outs))
            return torch.stack(outs).mean(dim=0)
        assert self.fusion is not None
        deltas = torch.stack([out - base_out for out in outs], dim=2)  # (B, T, k, C)
        return self.fusion(base_out, deltas)

    def _weighted(self, outs: list[torch.Tensor], base_out: torch.Tensor) -> torch.Tensor:
        """``Σ w_i out_i`` over all parts, those absent from this layer counting as base_out."""
        assert self.weights is not None
        present = [int(place) for place in self.parts]
        absent = sum(w for place, w in enumerate(self.weights) if place not in present)
        total = absent * base_out
        for place, out in zip(present, outs, strict=True):
            total = total + self.weights[place] * out
        return total

    @staticmethod
    def _run_part(
        part: AdapterModule,
        x: torch.Tensor,
        base_out: torch.Tensor,
        out: torch.Tensor,
        block_input: torch.Tensor | None,
        base: BaseWeights | None,
    ) -> torch.Tensor:
        """``part`` on the layer output ``out`` (``base_out`` itself, or a stack's output so
        far), with the hooks the host would give it alone."""
        extra = {"base": base} if part.reads_base else {}
        if not part.adapts_input:
            return part(x, out, block_input, **extra)
        # The host ran the frozen layer once, on x; this part wants it on its own input.
        assert base is not None, "an input-adapting part needs the frozen weight"
        seen = part.adapt_input(x)
        own = F.linear(seen.to(base.weight.dtype), base.weight, base.bias).to(base_out.dtype)
        adapted = part(seen, own, block_input, **extra)
        return adapted if out is base_out else out + (adapted - base_out)  # a stack: its update

    @classmethod
    def forward_rows(
        cls,
        modules: list[AdapterModule],
        slot: torch.Tensor,
        x: torch.Tensor,
        base_out: torch.Tensor,
        block_input: torch.Tensor | None,
        base: BaseWeights | None = None,
    ) -> torch.Tensor | None:
        """Compositions run one group of rows at a time (never batched across adapters)."""
        return None

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """The fusion's parameters and those of parts trained with the composition."""
        frozen = tuple(f"parts.{place}." for place, trains in self.trained.items() if not trains)
        return {n: p for n, p in self.named_parameters() if not n.startswith(frozen)}

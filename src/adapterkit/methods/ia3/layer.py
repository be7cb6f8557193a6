"""The (IA)3 module.

For a frozen layer ``y = W x + b`` with x: (B, T, in)::

    output scaling (keys, values):      y' = l ⊙ (W x + b)      l: (out,)
    input scaling (FFN down-projection): y' = W (l ⊙ x) + b      l: (in,)

Both are exact to merge: ``W' = diag(l) W, b' = l ⊙ b`` or ``W' = W diag(l)``; unmerging
divides again, so a vector with an entry near zero cannot be merged.
"""

from __future__ import annotations

import torch
from torch import nn

from adapterkit.errors import AdapterkitError
from adapterkit.methods.base import AdapterModule, BaseWeights
from adapterkit.methods.projection import gather_per_row

MIN_MERGE_SCALE = 1e-6
"""Below this magnitude a scale entry would wipe out its weight column on merge, and
unmerging (a division) could not bring it back."""


class Ia3Adapter(AdapterModule):
    """A learned element-wise scale of a layer's output, or of its input."""

    mergeable = True

    def __init__(self, features: int, scales_input: bool) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(features))
        self.scales_input = scales_input
        self.adapts_input = scales_input

    def adapt_input(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.to(x.dtype)

    def forward(
        self, x: torch.Tensor, base_out: torch.Tensor, block_input: torch.Tensor | None
    ) -> torch.Tensor:
        if self.scales_input:
            return base_out  # the host already ran the layer on adapt_input(x)
        return base_out * self.scale.to(base_out.dtype)

    @classmethod
    def forward_rows(
        cls,
        modules: list[AdapterModule],
        slot: torch.Tensor,
        x: torch.Tensor,
        base_out: torch.Tensor,
        block_input: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """Each row times its own adapter's vector (1 for rows without one), in one multiply."""
        first = modules[0]
        same = all(
            isinstance(m, Ia3Adapter)
            and m.scales_input == first.scales_input
            and m.scale.shape == first.scale.shape
            for m in modules
        )
        if not same:
            return None
        if first.scales_input:
            return base_out
        # gather_per_row gives zeros to rows without an adapter, so gather scale - 1.
        shift = gather_per_row([m.scale - 1 for m in modules], slot)  # (B, out)
        return base_out + base_out * shift.unsqueeze(1).to(base_out.dtype)

    def merged_weights(self, base: BaseWeights) -> BaseWeights:
        scale = self.scale.detach().to(base.weight.dtype)
        if scale.abs().min().item() < MIN_MERGE_SCALE:
            raise AdapterkitError(
                f"an IA3 scale entry is below {MIN_MERGE_SCALE} in magnitude; merging would "
                "erase its weights for good, so this adapter cannot be merged"
            )
        if self.scales_input:
            return BaseWeights(base.weight * scale, base.bias)
        bias = None if base.bias is None else base.bias * scale
        return BaseWeights(base.weight * scale.unsqueeze(1), bias)

    def unmerged_weights(self, base: BaseWeights) -> BaseWeights:
        scale = self.scale.detach().to(base.weight.dtype)
        if self.scales_input:
            return BaseWeights(base.weight / scale, base.bias)
        bias = None if base.bias is None else base.bias / scale
        return BaseWeights(base.weight / scale.unsqueeze(1), bias)

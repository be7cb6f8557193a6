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

from adapterkit.methods.base import AdapterModule

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


class BottleneckAdapter(AdapterModule):
    """Down-projection → non-linearity → up-projection, added to the layer output."""

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
        self, x: torch.Tensor, base_out: torch.Tensor, block_input: torch.Tensor | None
    ) -> torch.Tensor:
        source = block_input if self.parallel else base_out
        assert source is not None, "parallel adapter called without the block input"
        dtype = base_out.dtype
        delta = self.up(self.act(self.down(source.to(self.down.weight.dtype))))  # (B, T, C)
        return base_out + (self.scaling * self.dropout(delta)).to(dtype)

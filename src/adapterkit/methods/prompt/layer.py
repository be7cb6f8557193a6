"""The prompt tuning module: ``k`` soft tokens, held on the input embedding layer.

A soft prompt makes the sequence longer, which no single layer can do; so this module
only *holds* the learned tokens ``embedding`` (k, C) on the host of the base's input
embedding layer (where bundles and ``adapter_parameters`` find adapter weights), and
leaves that layer's output as it is. :mod:`adapterkit.prompting` lengthens each call's
input by ``k`` placeholder positions per routed row and writes these rows there.
"""

from __future__ import annotations

import torch
from torch import nn

from adapterkit.methods.base import AdapterModule


class PromptEmbedding(AdapterModule):
    """Soft prompt tokens (k, C), started from rows of the frozen embedding table."""

    routes_by_index = False  # its rows are read by name outside this layer

    def __init__(self, initial: torch.Tensor) -> None:
        super().__init__()
        self.embedding = nn.Parameter(initial.clone())  # (k, C)

    @property
    def num_virtual_tokens(self) -> int:
        """How many soft tokens this prompt puts before the input (k)."""
        return self.embedding.shape[0]

    def forward(
        self, x: torch.Tensor, base_out: torch.Tensor, block_input: torch.Tensor | None
    ) -> torch.Tensor:
        return base_out  # the tokens go in at the prompt positions (adapterkit.prompting)

    @classmethod
    def forward_rows(
        cls,
        modules: list[AdapterModule],
        slot: torch.Tensor,
        x: torch.Tensor,
        base_out: torch.Tensor,
        block_input: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """Nothing to do per row here either (see :meth:`forward`)."""
        return base_out

"""AdapterFusion's attention over the outputs of several adapters (Pfeiffer et al. 2021).

At one layer with output ``h`` (B, T, C) and the parts' updates ``d_i = part_i(h) - h``
stacked as (B, T, N, C)::

    q = W_q h + b_q                 (B, T, C)
    k_i = W_k d_i + b_k             (B, T, N, C)
    v_i = W_v d_i                   (B, T, N, C)    no bias
    p = softmax_i(q · k_i)          (B, T, N)
    h' = h + Σ_i p_i v_i

As in AdapterHub's ``BertFusion`` the query reads the layer's output before any adapter,
keys and values read each adapter's output, and ``W_v`` starts at the identity. Unlike it,
``W_k`` and ``b_k`` start at zero (AdapterHub draws them at random): every score is then
0, so a fresh fusion is exactly the average of its parts, the natural start for learning
which part to trust where; ``W_k`` still gets a gradient at once because ``q`` does not
vanish (LoRA starts its B at zero for the same reason). AdapterHub's optional
temperature annealing and its pull of ``W_v`` towards the identity are left out.
"""

from __future__ import annotations

import torch
from torch import nn


class FusionAttention(nn.Module):
    """A learned softmax over N parts' updates of one layer's output, per token."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.query = nn.Linear(features, features)
        self.key = nn.Linear(features, features)
        self.value = nn.Linear(features, features, bias=False)
        nn.init.normal_(self.query.weight, std=0.02)  # BERT's initialisation, as AdapterHub's
        nn.init.zeros_(self.query.bias)
        nn.init.zeros_(self.key.weight)
        nn.init.zeros_(self.key.bias)
        with torch.no_grad():
            self.value.weight.copy_(torch.eye(features))

    def weights(self, base_out: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        """Each part's share at each token: (B, T, N), summing to 1 over the parts."""
        dtype = self.query.weight.dtype
        q = self.query(base_out.to(dtype))  # (B, T, C)
        k = self.key(deltas.to(dtype))  # (B, T, N, C)
        return torch.einsum("btc,btnc->btn", q, k).softmax(dim=-1)

    def forward(self, base_out: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        """``base_out`` (B, T, C) plus the attention-weighted parts' updates ``deltas``
        (B, T, N, C)."""
        probs = self.weights(base_out, deltas)  # (B, T, N)
        v = self.value(deltas.to(self.value.weight.dtype))  # (B, T, N, C)
        context = torch.einsum("btn,btnc->btc", probs, v)
        return base_out + context.to(base_out.dtype)

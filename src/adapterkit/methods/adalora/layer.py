"""The AdaLoRA module: a LoRA update in SVD form, with a mask of kept ranks.

For a frozen layer ``y = W x + b`` with x: (B, T, in) and W: (out, in)::

    y' = W x + b + s · Q diag(λ ⊙ m) P dropout(x)     P: (r, in), λ, m: (r,), Q: (out, r)

``P`` (``lora_A``) starts with orthonormal rows and ``Q`` (``lora_B``) with orthonormal
columns, so the orthogonality penalty starts satisfied and ``λ`` (``lora_E``) reads as
singular values from the first step; ``λ`` starts at zero, so a fresh adapter leaves the
layer unchanged. (peft draws P and Q from N(0, 0.02²), far from orthonormal; the penalty
then spends the first steps pulling them there.) ``m`` (``rank_mask``, 0 or 1 per rank) is
set by the trainer's rank allocator; it is stored with the weights but never trained, so
a checkpoint restores exactly the model that was validated. :meth:`keep_ranks` drops the
masked ranks for good (what a bundle stores). ``s`` is alpha over the *initial* rank, as in
peft, and stays so when ranks are dropped.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from adapterkit.methods.base import AdapterModule
from adapterkit.methods.projection import (
    add_projection,
    add_projection_rows,
    gather_per_row,
    matmul_input,
)


class AdaLoraAdapter(AdapterModule):
    """SVD-form low-rank update of a linear layer's output, some ranks masked."""

    mergeable = True

    def __init__(
        self, in_features: int, out_features: int, r: int, scaling: float, dropout: float
    ) -> None:
        super().__init__()
        self.lora_A = nn.Parameter(torch.empty(r, in_features))  # P
        self.lora_E = nn.Parameter(torch.zeros(r))  # λ
        self.lora_B = nn.Parameter(torch.empty(out_features, r))  # Q
        # A parameter, not a buffer, so that checkpoints and bundles carry it with the
        # weights it was trained with; kept out of training (trainable_parameters).
        self.rank_mask = nn.Parameter(torch.ones(r), requires_grad=False)
        self.dropout = nn.Dropout(dropout)
        self.scaling = scaling
        if r > 0:  # torch warns on initialising an empty tensor
            nn.init.orthogonal_(self.lora_A)
            nn.init.orthogonal_(self.lora_B)

    @property
    def rank(self) -> int:
        """Ranks this module holds (kept or masked)."""
        return self.lora_E.shape[0]

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """P, λ and Q; the mask is the allocator's to set."""
        return {n: p for n, p in self.named_parameters() if n != "rank_mask"}

    def scaled_p(self) -> torch.Tensor:
        """``diag(λ ⊙ m) P``: (r, in)."""
        # The mask never gets a gradient, so it stays 0/1 even where a caller marks every
        # adapter parameter trainable (optimizers skip parameters without a gradient).
        return (self.lora_E * self.rank_mask.detach()).unsqueeze(1) * self.lora_A

    def forward(
        self, x: torch.Tensor, base_out: torch.Tensor, block_input: torch.Tensor | None
    ) -> torch.Tensor:
        x = self.dropout(matmul_input(x, self.lora_A.dtype))
        low = F.linear(x, self.scaled_p())  # (B, T, rank)
        if low.dtype == base_out.dtype and low.shape[-1] > 0:  # up, scale and add: one addmm
            return add_projection(base_out, low, self.lora_B, None, self.scaling)
        delta = F.linear(low, self.lora_B)  # (B, T, out)
        return base_out + (self.scaling * delta).to(base_out.dtype)

    def delta_weight(self) -> torch.Tensor:
        """The update ``s · Q diag(λ ⊙ m) P`` as an (out, in) matrix."""
        return self.scaling * (self.lora_B @ self.scaled_p())

    @torch.no_grad()
    def keep_ranks(self, keep: torch.Tensor) -> None:
        """Drop the ranks where ``keep`` (r,) is False: the module becomes one of rank
        ``keep.sum()`` computing exactly what it computed with those ranks masked."""
        keep = keep.to(self.lora_E.device)
        kept_mask = self.rank_mask[keep]
        # Masked ranks inside the kept ones would change nothing, but are folded into λ
        # so the smaller module has an all-ones mask.
        for name, value in (
            ("lora_A", self.lora_A[keep]),
            ("lora_E", self.lora_E[keep] * kept_mask),
            ("lora_B", self.lora_B[:, keep]),
            ("rank_mask", torch.ones_like(kept_mask)),
        ):
            old = getattr(self, name)
            setattr(self, name, nn.Parameter(value.clone(), requires_grad=old.requires_grad))

    @classmethod
    def forward_rows(
        cls,
        modules: list[AdapterModule],
        slot: torch.Tensor,
        x: torch.Tensor,
        base_out: torch.Tensor,
        block_input: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """Each row with its own P, λ and Q in two batched matmuls, whatever each module's
        rank: the factors are padded with zero ranks to the widest (allocated ranks differ
        from layer to layer and from adapter to adapter). Eval mode or no dropout only."""
        first = modules[0]
        if not all(
            isinstance(m, cls)
            and m.lora_A.dtype == first.lora_A.dtype
            and (not m.training or m.dropout.p == 0.0)
            for m in modules
        ):
            return None
        width = max(m.rank for m in modules)
        p = gather_per_row(
            [F.pad(m.scaled_p(), (0, 0, 0, width - m.rank)) for m in modules], slot
        )  # (B, width, in)
        q = gather_per_row([F.pad(m.lora_B, (0, width - m.rank)) for m in modules], slot)
        low = torch.bmm(matmul_input(x, first.lora_A.dtype), p.transpose(1, 2))  # (B, T, width)
        return add_projection_rows(base_out, low, q, None, [m.scaling for m in modules], slot)

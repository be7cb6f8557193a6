"""The DoRA module.

For a frozen layer ``y = W x + b`` (W: (out, in)) and a LoRA update ``ΔW = s · B A``::

    y' = (m / ‖W + ΔW‖) ⊙ (W x + ΔW x) + b          m, ‖·‖: (out,), one per output row

computed from the frozen layer's output as ``g ⊙ (y + ΔW x) + (1 - g) ⊙ b`` with
``g = m / ‖W + ΔW‖``, so the frozen product ``W x`` is not run twice, and the (B, T, out)
tensor is passed over only by the up-projection's ``addmm`` (which adds ``y``) and one
``addcmul`` (gain and bias), where the form ``y + (g - 1) ⊙ (y - b) + g ⊙ ΔW x`` took
five passes, each kept for the backward too. As in the paper
(§4.3) and peft, the norm is a constant for the backward pass: its graph would cost an
(out, in) matrix per layer of activation memory for no measured gain. LoRA's dropout
applies to the low-rank path only.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from adapterkit.errors import AdapterkitError
from adapterkit.methods.base import AdapterModule, BaseWeights
from adapterkit.methods.lora.layer import LoraAdapter
from adapterkit.methods.projection import (
    add_projection,
    gather_per_row,
    matmul_input,
    row_scalings,
)

MIN_MERGE_MAGNITUDE = 1e-6
"""Below this a row's magnitude would erase the row on merge, beyond unmerging."""


class DoraAdapter(LoraAdapter):
    """A LoRA direction update with a learned length per output row."""

    reads_base = True
    owns_output = False  # its forward is its own, with no in-place add

    def __init__(
        self,
        in_features: int,
        out_features: int,
        r: int,
        scaling: float,
        dropout: float,
        weight: torch.Tensor,
    ) -> None:
        super().__init__(in_features, out_features, r, scaling, dropout)
        # B starts at zero, so ‖W + ΔW‖ = ‖W‖ and g = 1: the fresh adapter is the identity.
        self.magnitude = nn.Parameter(weight.detach().to(torch.float32).norm(dim=1))
        self._merged_gain: torch.Tensor | None = None

    def row_gain(self, weight: torch.Tensor) -> torch.Tensor:
        """``g = m / ‖W + ΔW‖`` per output row (out,), the norm a constant: computed with
        autograd off, so no graph of the (out, in) sum is built only to be cut."""
        with torch.no_grad():
            directed = weight.to(self.lora_A.weight.dtype) + self.delta_weight()
            norm = directed.norm(dim=1)
        return self.magnitude / norm

    def forward(
        self,
        x: torch.Tensor,
        base_out: torch.Tensor,
        block_input: torch.Tensor | None,
        *,
        base: BaseWeights,
    ) -> torch.Tensor:
        dtype = self.lora_A.weight.dtype
        gain = self.row_gain(base.weight)
        x = matmul_input(x, dtype)
        if self.training and self.dropout.p > 0:
            x = self.dropout(x)
        low = F.linear(x, self.lora_A.weight)  # (B, T, r), autocast's dtype under autocast
        summed = add_projection(base_out.to(low.dtype), low, self.lora_B.weight, None, self.scaling)
        rows = summed.reshape(-1, summed.shape[-1])
        # The gain stays in its fp32 (a gain of 1.0003 is 1.0 in bf16): a bf16 sum under
        # autocast is promoted here, and the result rounded once into the output's dtype.
        if base.bias is None:
            scaled = rows * gain
        else:  # g ⊙ (y + ΔW x) + (1 - g) ⊙ b in one pass
            scaled = torch.addcmul((1 - gain) * base.bias, rows, gain)
        return scaled.view(base_out.shape).to(base_out.dtype)

    @classmethod
    def forward_rows(
        cls,
        modules: list[AdapterModule],
        slot: torch.Tensor,
        x: torch.Tensor,
        base_out: torch.Tensor,
        block_input: torch.Tensor | None,
        *,
        base: BaseWeights,
    ) -> torch.Tensor | None:
        """Each row with its own A, B and gain, in two batched matmuls (as LoRA's rows)."""
        if not cls.batchable(modules):
            return None
        dtype = modules[0].lora_A.weight.dtype
        low, b = cls.factor_rows(modules, slot, x)
        scale = row_scalings([m.scaling for m in modules], slot, dtype)
        low_rank = torch.bmm(low * scale, b.transpose(1, 2))  # (B, T, out)
        # Rows without an adapter gather zeros: no shift and no low-rank term.
        shift = gather_per_row([m.row_gain(base.weight) - 1 for m in modules], slot)  # (B, out)
        shift = shift.unsqueeze(1)
        plain = _without_bias(base_out.to(dtype), base.bias)
        return base_out + (shift * plain + (shift + 1) * low_rank).to(base_out.dtype)

    def merged_weights(self, base: BaseWeights) -> BaseWeights:
        if self.magnitude.detach().abs().min().item() < MIN_MERGE_MAGNITUDE:
            raise AdapterkitError(
                f"a DoRA magnitude is below {MIN_MERGE_MAGNITUDE}; merging would erase its row "
                "for good, so this adapter cannot be merged"
            )
        directed = base.weight + self.delta_weight().detach().to(base.weight.dtype)
        gain = self.magnitude.detach().to(base.weight.dtype) / directed.norm(dim=1)
        self._merged_gain = gain  # unmerging needs the norm of the weight before the merge
        return BaseWeights(gain.unsqueeze(1) * directed, base.bias)

    def unmerged_weights(self, base: BaseWeights) -> BaseWeights:
        if self._merged_gain is None:
            raise AdapterkitError("this DoRA adapter is not merged")
        gain, self._merged_gain = self._merged_gain, None
        delta = self.delta_weight().detach().to(base.weight.dtype)
        return BaseWeights(base.weight / gain.unsqueeze(1) - delta, base.bias)


def _without_bias(out: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return out if bias is None else out - bias.to(out.dtype)

"""The gated parts of the UniPELT-style mix: each existing module's contribution scaled by
a learned gate, so training can turn down the parts that do not help (Mao et al. 2022).

LoRA and the bottleneck adapter get a gate per token, ``g = σ(w · u + b)`` with ``u`` the
part's own input (the layer input for LoRA, the layer output the adapter reads for the
bottleneck)::

    LoRA:        y' = y + g(x) · s B A x
    bottleneck:  y' = y + g(y) · up(act(down(y)))

The prefix gets one learned gate per layer on its values, ``V' = [σ(θ) P_v ; V]``: the
prefix keeps its attention share while the gate scales what it brings in (its values do
not depend on the input, so neither can a gate on them). Gates start at σ(0) = 1/2; LoRA's
B and the adapter's up-projection start at zero, so those parts start as the identity.
Gated LoRA depends on its input beyond a weight change, so the mix does not merge.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from adapterkit.methods.base import AdapterModule
from adapterkit.methods.bottleneck.layer import BottleneckAdapter
from adapterkit.methods.lora.layer import LoraAdapter
from adapterkit.methods.prefix.layer import PrefixAdapter
from adapterkit.methods.projection import gather_per_row, matmul_input


class TokenGate(nn.Module):
    """``σ(w · u + b)`` per token of ``u`` (B, T, C): (B, T, 1)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.gate = nn.Linear(features, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.gate(source.to(self.gate.weight.dtype)))


def gated_rows(
    modules: list[AdapterModule],
    slot: torch.Tensor,
    source: torch.Tensor,
    base_out: torch.Tensor,
    updated: torch.Tensor | None,
) -> torch.Tensor | None:
    """``base_out + g_row(source) · (updated − base_out)``: the ungated batched result
    ``updated`` of each row's module, gated by that row's own gate."""
    if updated is None:
        return None
    gates: list[TokenGate] = [m.token_gate for m in modules]  # type: ignore[attr-defined]
    weight = gather_per_row([g.gate.weight[0] for g in gates], slot)  # (B, C)
    bias = gather_per_row([g.gate.bias for g in gates], slot)  # (B, 1)
    dtype = weight.dtype
    logits = torch.einsum("btc,bc->bt", source.to(dtype), weight) + bias
    gate = torch.sigmoid(logits).unsqueeze(-1)  # (B, T, 1); rows without a module: unused
    return base_out + (gate * (updated - base_out).to(dtype)).to(base_out.dtype)


class TokenGated(AdapterModule):
    """What the per-token gated parts share: the part's own update, scaled per token by
    ``σ(w · u + b)``, ``u`` being :meth:`gate_source` (a mixin before the part's class)."""

    token_gate: TokenGate
    owns_output = False  # the gate reads base_out after the part's own forward

    @staticmethod
    def gate_source(x: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
        """What the gate reads: the layer input (LoRA) or output (a sequential adapter)."""
        raise NotImplementedError

    def part_update(self, x: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
        """The part's own update (B, T, out), before its scaling."""
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, base_out: torch.Tensor, block_input: torch.Tensor | None
    ) -> torch.Tensor:
        # y + g · s · u in one addcmul: taking the part's y + s·u and then subtracting y
        # again made three more full-size passes, and lost the update's low bits.
        gate = self.token_gate(self.gate_source(x, base_out))
        update = self.part_update(x, base_out)
        gated = torch.addcmul(base_out, gate, update, value=self.scaling)
        return gated.to(base_out.dtype)

    @classmethod
    def forward_rows(
        cls,
        modules: list[AdapterModule],
        slot: torch.Tensor,
        x: torch.Tensor,
        base_out: torch.Tensor,
        block_input: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """The part's own batched rows, then each row's gate."""
        updated = super().forward_rows(modules, slot, x, base_out, block_input)
        return gated_rows(modules, slot, cls.gate_source(x, base_out), base_out, updated)


class GatedLora(TokenGated, LoraAdapter):
    """LoRA whose update each token gates by its own input."""

    mergeable = False

    def __init__(
        self, in_features: int, out_features: int, r: int, scaling: float, dropout: float
    ) -> None:
        super().__init__(in_features, out_features, r, scaling, dropout)
        self.token_gate = TokenGate(in_features)

    @staticmethod
    def gate_source(x: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
        return x

    def part_update(self, x: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
        x = matmul_input(x, self.lora_A.weight.dtype)
        if self.training and self.dropout.p > 0:
            x = self.dropout(x)
        return F.linear(F.linear(x, self.lora_A.weight), self.lora_B.weight)


class GatedBottleneck(TokenGated, BottleneckAdapter):
    """A sequential bottleneck adapter whose output each token gates by the adapter's input."""

    def __init__(self, features: int, width: int, non_linearity: str) -> None:
        super().__init__(features, features, width, non_linearity)
        self.token_gate = TokenGate(features)

    @staticmethod
    def gate_source(x: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
        return base_out

    def part_update(self, x: torch.Tensor, base_out: torch.Tensor) -> torch.Tensor:
        source = matmul_input(base_out, self.down.weight.dtype)
        hidden = self.act(F.linear(source, self.down.weight, self.down.bias))
        return self.dropout(F.linear(hidden, self.up.weight, self.up.bias))


class GatedPrefix(PrefixAdapter):
    """A prefix whose values one learned gate scales."""

    def __init__(self, parts: dict[str, int], length: int, hidden: int) -> None:
        super().__init__(parts, length, hidden)
        # Only a layer that supplies values has a gate (a key projection's would do nothing).
        self.value_gate = nn.Parameter(torch.zeros(())) if "value" in parts else None

    def tables(self) -> dict[str, torch.Tensor]:
        """The tables the attention reads: the values scaled by the gate."""
        tables = self.ungated_tables()
        if self.value_gate is not None:
            tables["value"] = torch.sigmoid(self.value_gate) * tables["value"]
        return tables

    def ungated_tables(self) -> dict[str, torch.Tensor]:
        """The tables before the gate (what a bundle folds the MLP into)."""
        return super().tables()

    def bundle_tensors(self) -> dict[str, torch.Tensor] | None:
        """The folded tables, without the gate, and the gate beside them."""
        if not any(hasattr(table, "mlp") for table in self.parts.values()):
            return None
        with torch.no_grad():
            tables = self.ungated_tables()
            folded = {f"parts.{part}.weight": t.detach().clone() for part, t in tables.items()}
        if self.value_gate is not None:
            folded["value_gate"] = self.value_gate.detach().clone()
        return folded

"""Configuration of the gated mix (UniPELT-style, Mao et al. 2022): LoRA, a bottleneck
adapter and prefix tuning in every block, each behind a learned gate.

Where each part goes (by the architecture's default roles, or ``target_modules``):

- attention key/value projections: a prefix (:class:`~adapterkit.methods.unipelt.layer.GatedPrefix`),
  its values gated per layer;
- the FFN down-projection: a sequential bottleneck adapter on its output, gated per token;
- every other layer LoRA adapts by default (query, attention output, FFN up-projection):
  LoRA, gated per token.

The parts are the modules of ``lora``, ``pfeiffer`` and ``prefix`` with a gate added
(:mod:`adapterkit.methods.unipelt.layer`); UniPELT put LoRA on the query and value, which
here hold the prefix's values instead (one module per layer and adapter).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from adapterkit.methods.base import AdapterConfig, AdapterModule, BaseWeights, LayerSpec
from adapterkit.methods.bottleneck.config import NON_LINEARITIES
from adapterkit.methods.lora.config import LoraConfig
from adapterkit.methods.prefix.config import (
    PrefixConfig,
    is_key_value_projection,
    projection_parts,
)


@dataclass
class UniPeltConfig(AdapterConfig):
    """LoRA + bottleneck adapter + prefix tuning, each behind a learned gate."""

    r: int = field(default=8, metadata={"flag": "--rank", "dest": "rank", "min": 1})
    """Rank of the gated LoRA updates."""

    alpha: float = field(default=16.0, metadata={"above": 0})
    """LoRA's scale numerator (the update is multiplied by alpha / r)."""

    prefix_length: int = field(default=10, metadata={"min": 1, "max": 4096})
    """Number of learned key/value vectors per attention layer (UniPELT: 10)."""

    prefix_projection: int = field(default=128, metadata={"min": 0, "max": 65536})
    """Hidden width of the MLP that produces the prefix while training; a saved bundle stores
    only its output. 0 trains the keys and values directly."""

    reduction_factor: float = field(default=16.0, metadata={"above": 0})
    """Bottleneck width = hidden size / reduction_factor."""

    non_linearity: str = field(default="relu", metadata={"choices": NON_LINEARITIES})
    """The bottleneck adapter's non-linearity: relu, gelu, swish (= silu), tanh."""

    method: ClassVar[str] = "unipelt"

    def roles(self) -> list[str]:
        return ["lora", "attn_kv", "ffn_out"]

    def prefix(self) -> PrefixConfig:
        """The prefix part, as a ``prefix`` config (its checks and attention wrapper)."""
        return PrefixConfig(
            target_modules=self.target_modules,
            layers=self.layers,
            prefix_length=self.prefix_length,
            prefix_projection=self.prefix_projection,
        )

    def prepare_model(self, model: nn.Module, targets: list[str]) -> None:
        self.prefix().prepare_model(model, [t for t in targets if is_key_value_projection(t)])

    def build_layer(self, spec: LayerSpec, base: BaseWeights) -> AdapterModule:
        from adapterkit.methods.unipelt.layer import GatedBottleneck, GatedLora, GatedPrefix

        if is_key_value_projection(spec.name):
            parts = projection_parts(spec.name, spec.out_features, self.method)
            return GatedPrefix(parts, self.prefix_length, self.prefix_projection)
        if "ffn_out" in spec.roles:
            width = max(1, math.floor(spec.out_features / self.reduction_factor))
            return GatedBottleneck(spec.out_features, width, self.non_linearity)
        lora = LoraConfig(r=self.r, alpha=self.alpha)
        lora.check_rank(spec.in_features, spec.out_features)
        return GatedLora(spec.in_features, spec.out_features, self.r, lora.scaling, 0.0)

    def bundle_config(self) -> AdapterConfig:
        """A bundle stores the prefix MLP's output, which a prefix without the MLP holds."""
        return dataclasses.replace(self, prefix_projection=0)

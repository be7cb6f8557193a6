"""Configuration of LoRA (Hu et al. 2021), with the rsLoRA scaling option."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from adapterkit.errors import AdapterkitError
from adapterkit.methods.base import AdapterConfig, AdapterModule


@dataclass
class LoraConfig(AdapterConfig):
    """A low-rank update ``ΔW = (alpha / r) · B A`` added to frozen linear layers."""

    r: int = field(default=8, metadata={"flag": "--rank", "dest": "rank"})
    """Rank of the update."""

    alpha: float = 16.0
    """Scale numerator: the update is multiplied by alpha / r (or alpha / sqrt(r) with rsLoRA)."""

    dropout: float = field(
        default=0.0, metadata={"flag": "--adapter-dropout", "dest": "adapter_dropout"}
    )
    """Dropout on the layer input of the low-rank path."""

    use_rslora: bool = False
    """Rank-stabilised scaling alpha / sqrt(r) (Kalajdzievski 2023)."""

    method: ClassVar[str] = "lora"

    def __post_init__(self) -> None:
        if self.r < 1:
            raise AdapterkitError(f"LoRA rank r must be >= 1, got {self.r}")
        if not 0.0 <= self.dropout < 1.0:
            raise AdapterkitError("dropout must be in [0, 1)")

    @property
    def scaling(self) -> float:
        """The multiplier applied to ``B A x``."""
        return self.alpha / (math.sqrt(self.r) if self.use_rslora else self.r)

    def roles(self) -> list[str]:
        return ["lora"]

    def build(self, in_features: int, out_features: int, tap_features: int | None) -> AdapterModule:
        from adapterkit.methods.lora.layer import LoraAdapter

        return LoraAdapter(in_features, out_features, self.r, self.scaling, self.dropout)

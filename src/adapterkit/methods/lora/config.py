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

    r: int = field(default=8, metadata={"flag": "--rank", "dest": "rank", "min": 1})
    """Rank of the update."""

    # Above 0: at 0 the update is nothing and gets no gradient; below, it is subtracted.
    alpha: float = field(default=16.0, metadata={"above": 0})
    """Scale numerator: the update is multiplied by alpha / r (or alpha / sqrt(r) with rsLoRA)."""

    dropout: float = field(
        default=0.0,
        metadata={"flag": "--adapter-dropout", "dest": "adapter_dropout", "min": 0, "below": 1},
    )
    """Dropout on the layer input of the low-rank path."""

    use_rslora: bool = False
    """Rank-stabilised scaling alpha / sqrt(r) (Kalajdzievski 2023)."""

    method: ClassVar[str] = "lora"

    @property
    def scaling(self) -> float:
        """The multiplier applied to ``B A x``."""
        return self.alpha / (math.sqrt(self.r) if self.use_rslora else self.r)

    def roles(self) -> list[str]:
        return ["lora"]

    def build(self, in_features: int, out_features: int, tap_features: int | None) -> AdapterModule:
        from adapterkit.methods.lora.layer import LoraAdapter

        self.check_rank(in_features, out_features)
        return LoraAdapter(in_features, out_features, self.r, self.scaling, self.dropout)

    def check_rank(self, in_features: int, out_features: int) -> None:
        """Refuse a rank above the layer's width."""
        if self.r > max(in_features, out_features):
            # B A has rank at most min(in, out), so a rank above the layer's width only
            # costs memory; refused before allocation (a typo such as 10**6 would ask
            # for gigabytes).
            raise AdapterkitError(
                f"{self.method} rank r={self.r} is above the layer's width "
                f"({in_features} in, {out_features} out); use a smaller rank"
            )

"""Configuration of DoRA (Liu et al. 2024): LoRA's options, plus a learned magnitude."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from adapterkit.errors import AdapterkitError
from adapterkit.methods.base import AdapterModule, BaseWeights, LayerSpec
from adapterkit.methods.lora.config import LoraConfig


@dataclass
class DoraConfig(LoraConfig):
    """Weight-decomposed LoRA: ``W' = m · (W + ΔW) / ‖W + ΔW‖`` per output row.

    ``ΔW`` is a LoRA update (rank, alpha, dropout and rsLoRA as for ``lora``) that sets the
    direction of each output row; ``m`` (one number per output row) its length. ``m``
    starts at the frozen rows' norms, so a fresh adapter is the identity.
    """

    method: ClassVar[str] = "dora"

    def build(self, in_features: int, out_features: int, tap_features: int | None) -> AdapterModule:
        raise AdapterkitError(
            "a DoRA module starts from its layer's weight; build it with build_layer"
        )

    def build_layer(self, spec: LayerSpec, base: BaseWeights) -> AdapterModule:
        from adapterkit.methods.dora.layer import DoraAdapter

        self.check_rank(spec.in_features, spec.out_features)
        return DoraAdapter(
            spec.in_features, spec.out_features, self.r, self.scaling, self.dropout, base.weight
        )

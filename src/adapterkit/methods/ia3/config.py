"""Configuration of (IA)3 (Liu et al. 2022): learned rescaling vectors, nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from adapterkit.methods.base import AdapterConfig, AdapterModule, BaseWeights, LayerSpec


@dataclass
class Ia3Config(AdapterConfig):
    """One learned vector per adapted layer that rescales activations element-wise.

    On the attention keys and values (the ``attn_kv`` role) it scales the layer's output;
    on the FFN down-projection (the ``ffn_out`` role) it scales the layer's *input*, the
    FFN's intermediate activations, as in the paper. A layer given by ``target_modules``
    that the architecture's defaults do not call an FFN down-projection gets its output
    scaled. Vectors start at one, so a fresh adapter is the identity; either kind folds
    into the frozen weight (merge/unmerge).
    """

    input_scaled: list[str] | None = field(default=None, metadata={"flag": None})
    """Layer names (or dotted name suffixes) whose input is scaled; ``None``: the layers the
    architecture's defaults call FFN down-projections. An import from PEFT sets it from
    PEFT's ``feedforward_modules``."""

    method: ClassVar[str] = "ia3"

    def roles(self) -> list[str]:
        return ["attn_kv", "ffn_out"]

    def build(self, in_features: int, out_features: int, tap_features: int | None) -> AdapterModule:
        from adapterkit.methods.ia3.layer import Ia3Adapter

        return Ia3Adapter(out_features, scales_input=False)

    def build_layer(self, spec: LayerSpec, base: BaseWeights) -> AdapterModule:
        from adapterkit.methods.ia3.layer import Ia3Adapter

        if self.scales_input_of(spec):
            return Ia3Adapter(spec.in_features, scales_input=True)
        return Ia3Adapter(spec.out_features, scales_input=False)

    def scales_input_of(self, spec: LayerSpec) -> bool:
        """Whether the layer ``spec`` gets its input scaled (else its output)."""
        if self.input_scaled is None:
            return "ffn_out" in spec.roles
        return any(spec.name == n or spec.name.endswith("." + n) for n in self.input_scaled)

"""Configuration of the mix-and-match adapter (He et al. 2022, "Towards a Unified View of
Parameter-Efficient Transfer Learning").

MAM puts prefix tuning on every attention layer and a scaled parallel bottleneck adapter
beside every FFN, the combination that paper found best of its unified design space. It
has no module of its own: the attention's key and value projections get the
:class:`~adapterkit.methods.prefix.layer.PrefixAdapter` of ``prefix``, the FFN's
down-projection the parallel :class:`~adapterkit.methods.bottleneck.layer.BottleneckAdapter`
of ``parallel``, each built by its own method's config (:meth:`MamConfig.prefix` and
:meth:`MamConfig.adapter`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from adapterkit.methods.base import AdapterConfig, AdapterModule, BaseWeights, LayerSpec
from adapterkit.methods.bottleneck.config import NON_LINEARITIES, BottleneckConfig
from adapterkit.methods.prefix.config import PrefixConfig, is_key_value_projection


@dataclass
class MamConfig(AdapterConfig):
    """Prefix tuning on the attention plus a parallel adapter (scaled) beside the FFN.

    Defaults follow He et al.'s MAM: a prefix of 30 and a parallel adapter scaled by 4 whose
    width is half the hidden size (their 512 of 1024). Layers are split by name: attention
    key/value projections get the prefix, every other target the parallel adapter.
    """

    prefix_length: int = field(default=30, metadata={"min": 1, "max": 4096})
    """Number of learned key/value vectors per attention layer (He et al.: 30)."""

    prefix_projection: int = field(default=128, metadata={"min": 0, "max": 65536})
    """Hidden width of the MLP that produces the prefix while training; a saved bundle stores
    only its output. 0 trains the keys and values directly."""

    reduction_factor: float = field(default=2.0, metadata={"above": 0})
    """Parallel adapter width = hidden size / reduction_factor (ignored when
    bottleneck_size is set)."""

    bottleneck_size: int | None = field(default=None, metadata={"min": 1})
    """Explicit parallel adapter width."""

    non_linearity: str = field(default="relu", metadata={"choices": NON_LINEARITIES})
    """The parallel adapter's non-linearity: relu, gelu, swish (= silu), tanh."""

    dropout: float = field(
        default=0.0,
        metadata={"flag": "--adapter-dropout", "dest": "adapter_dropout", "min": 0, "below": 1},
    )
    """Dropout on the parallel adapter's output before it is added."""

    scaling: float = field(
        default=4.0, metadata={"flag": "--adapter-scaling", "dest": "adapter_scaling", "above": 0}
    )
    """Multiplier of the parallel adapter's output (He et al.: 4)."""

    method: ClassVar[str] = "mam"

    def prefix(self) -> PrefixConfig:
        """The prefix-tuning half, as a ``prefix`` config."""
        return PrefixConfig(
            target_modules=self.target_modules,
            layers=self.layers,
            prefix_length=self.prefix_length,
            prefix_projection=self.prefix_projection,
        )

    def adapter(self) -> BottleneckConfig:
        """The FFN half, as a ``parallel`` bottleneck config."""
        return BottleneckConfig(
            target_modules=self.target_modules,
            layers=self.layers,
            placement="parallel",
            reduction_factor=self.reduction_factor,
            bottleneck_size=self.bottleneck_size,
            non_linearity=self.non_linearity,
            dropout=self.dropout,
            scaling=self.scaling,
        )

    def roles(self) -> list[str]:
        return ["attn_kv", "ffn_out"]

    def needs_block_input(self) -> bool:
        return True

    def reads_block_input(self, target: str) -> bool:
        return not is_key_value_projection(target)

    def prepare_model(self, model: nn.Module, targets: list[str]) -> None:
        self.prefix().prepare_model(model, [t for t in targets if is_key_value_projection(t)])

    def build_layer(self, spec: LayerSpec, base: BaseWeights) -> AdapterModule:
        if is_key_value_projection(spec.name):
            return self.prefix().build_layer(spec, base)
        return self.adapter().build(spec.in_features, spec.out_features, spec.tap_features)

    def bundle_config(self) -> AdapterConfig:
        """A bundle stores the prefix MLP's output, which a prefix without the MLP holds."""
        return dataclasses.replace(self, prefix_projection=0)

"""Configuration of bottleneck adapters (Houlsby 2019, Pfeiffer 2020, parallel)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from adapterkit.errors import AdapterkitError
from adapterkit.methods.base import AdapterConfig, AdapterModule

PLACEMENTS = ("houlsby", "pfeiffer", "parallel")
NON_LINEARITIES = ("relu", "gelu", "swish", "silu", "tanh")


@dataclass
class BottleneckConfig(AdapterConfig):
    """A down-projection, a non-linearity and an up-projection with a skip connection.

    The up-projection starts at zero, so a fresh adapter is the identity.
    """

    # Set by the presets (houlsby, pfeiffer, parallel), so no flag; still a YAML key.
    placement: str = field(default="pfeiffer", metadata={"flag": None})
    """``houlsby``: after the attention output projection and after the FFN output;
    ``pfeiffer``: after the FFN output only; ``parallel``: beside the FFN, reading the
    FFN block input and adding to its output (He et al. 2021)."""

    reduction_factor: float = 16.0
    """Bottleneck size = hidden size / reduction_factor (ignored when bottleneck_size is set)."""

    bottleneck_size: int | None = None
    """Explicit bottleneck width."""

    non_linearity: str = "relu"
    """One of relu, gelu, swish (= silu), tanh."""

    dropout: float = field(
        default=0.0, metadata={"flag": "--adapter-dropout", "dest": "adapter_dropout"}
    )
    """Dropout on the adapter's output before it is added back."""

    scaling: float = field(
        default=1.0, metadata={"flag": "--adapter-scaling", "dest": "adapter_scaling"}
    )
    """Multiplier of the adapter's output (He et al. use 4.0 for parallel adapters)."""

    method: ClassVar[str] = "bottleneck"

    def __post_init__(self) -> None:
        if self.placement not in PLACEMENTS:
            raise AdapterkitError(
                f"placement must be one of {', '.join(PLACEMENTS)}, got '{self.placement}'"
            )
        if self.non_linearity not in NON_LINEARITIES:
            raise AdapterkitError(
                f"non_linearity must be one of {', '.join(NON_LINEARITIES)}, got '{self.non_linearity}'"
            )
        if self.bottleneck_size is None and self.reduction_factor <= 0:
            raise AdapterkitError("reduction_factor must be > 0")
        if self.bottleneck_size is not None and self.bottleneck_size < 1:
            raise AdapterkitError("bottleneck_size must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise AdapterkitError("dropout must be in [0, 1)")

    def roles(self) -> list[str]:
        return {
            "houlsby": ["attn_out", "ffn_out"],
            "pfeiffer": ["ffn_out"],
            "parallel": ["ffn_out"],
        }[self.placement]

    def needs_block_input(self) -> bool:
        return self.placement == "parallel"

    def width(self, hidden: int) -> int:
        """The bottleneck width for a layer of size ``hidden``."""
        if self.bottleneck_size is not None:
            return self.bottleneck_size
        return max(1, int(hidden // self.reduction_factor))

    def build(self, in_features: int, out_features: int, tap_features: int | None) -> AdapterModule:
        from adapterkit.methods.bottleneck.layer import BottleneckAdapter

        source = tap_features if self.needs_block_input() else out_features
        if source is None:
            raise AdapterkitError(
                "a parallel adapter needs the FFN block input, but no tap was found"
            )
        return BottleneckAdapter(
            source_features=source,
            out_features=out_features,
            width=self.width(out_features),
            non_linearity=self.non_linearity,
            dropout=self.dropout,
            scaling=self.scaling,
            parallel=self.needs_block_input(),
        )

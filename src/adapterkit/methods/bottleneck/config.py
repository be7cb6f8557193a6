"""Configuration of bottleneck adapters (Houlsby 2019, Pfeiffer 2020, parallel)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from adapterkit.errors import AdapterkitError
from adapterkit.methods.base import AdapterConfig, AdapterModule

PLACEMENTS = ("houlsby", "pfeiffer", "parallel")
NON_LINEARITIES = ("relu", "gelu", "swish", "silu", "tanh")
MAX_WIDTH_RATIO = 4


@dataclass
class BottleneckConfig(AdapterConfig):
    """A down-projection, a non-linearity and an up-projection with a skip connection.

    The up-projection starts at zero, so a fresh adapter is the identity.
    """

    # Set by the presets (houlsby, pfeiffer, parallel), so no flag; still a YAML key.
    placement: str = field(default="pfeiffer", metadata={"flag": None, "choices": PLACEMENTS})
    """``houlsby``: after the attention output projection and after the FFN output;
    ``pfeiffer``: after the FFN output only; ``parallel``: beside the FFN, reading the
    FFN block input and adding to its output (He et al. 2021)."""

    reduction_factor: float = field(default=16.0, metadata={"above": 0})
    """Bottleneck size = hidden size / reduction_factor (ignored when bottleneck_size is set)."""

    bottleneck_size: int | None = field(default=None, metadata={"min": 1})
    """Explicit bottleneck width."""

    non_linearity: str = field(default="relu", metadata={"choices": NON_LINEARITIES})
    """One of relu, gelu, swish (= silu), tanh."""

    dropout: float = field(
        default=0.0,
        metadata={"flag": "--adapter-dropout", "dest": "adapter_dropout", "min": 0, "below": 1},
    )
    """Dropout on the adapter's output before it is added back."""

    scaling: float = field(
        default=1.0, metadata={"flag": "--adapter-scaling", "dest": "adapter_scaling", "above": 0}
    )
    """Multiplier of the adapter's output (He et al. use 4.0 for parallel adapters)."""

    method: ClassVar[str] = "bottleneck"

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
        width = self.width(out_features)
        if width > MAX_WIDTH_RATIO * out_features:
            # Refused before any weight is allocated: a typo such as 10**8 would
            # otherwise ask for gigabytes per layer.
            raise AdapterkitError(
                f"bottleneck width {width} is over {MAX_WIDTH_RATIO}x the layer's width "
                f"{out_features}; a bottleneck adapter is meant to be narrower than its layer"
            )
        return BottleneckAdapter(
            source_features=source,
            out_features=out_features,
            width=width,
            non_linearity=self.non_linearity,
            dropout=self.dropout,
            scaling=self.scaling,
            parallel=self.needs_block_input(),
        )

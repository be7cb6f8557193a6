"""Compositions of trained adapters (AdapterHub's composition blocks); registers
``composition`` and the presets fusion/stack/average."""

from adapterkit.methods import register_method
from adapterkit.methods.compose.config import CompositionConfig
from adapterkit.methods.compose.fusion import FusionAttention
from adapterkit.methods.compose.layer import CompositionAdapter

register_method(
    CompositionConfig,
    presets={
        "fusion": {"mode": "fusion"},
        "stack": {"mode": "stack"},
        "average": {"mode": "average"},
    },
)

__all__ = ["CompositionAdapter", "CompositionConfig", "FusionAttention"]

"""Bottleneck adapters; registers ``bottleneck`` and the presets houlsby/pfeiffer/parallel."""

from adapterkit.methods import register_method
from adapterkit.methods.bottleneck.config import BottleneckConfig
from adapterkit.methods.bottleneck.layer import BottleneckAdapter

register_method(
    BottleneckConfig,
    presets={
        "houlsby": {"placement": "houlsby"},
        "pfeiffer": {"placement": "pfeiffer"},
        # He et al. 2021 scale the parallel adapter's output by 4.
        "parallel": {"placement": "parallel", "scaling": 4.0},
    },
)

__all__ = ["BottleneckAdapter", "BottleneckConfig"]

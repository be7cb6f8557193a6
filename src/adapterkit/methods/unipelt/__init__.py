"""The gated mix of LoRA, a bottleneck adapter and prefix tuning (UniPELT-style); registers
the ``unipelt`` method."""

from adapterkit.methods import register_method
from adapterkit.methods.unipelt.config import UniPeltConfig

register_method(UniPeltConfig)

__all__ = ["UniPeltConfig"]

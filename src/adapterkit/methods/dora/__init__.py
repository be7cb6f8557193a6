"""DoRA; registers the ``dora`` method."""

from adapterkit.methods import register_method
from adapterkit.methods.dora.config import DoraConfig
from adapterkit.methods.dora.layer import DoraAdapter

register_method(DoraConfig)

__all__ = ["DoraAdapter", "DoraConfig"]

"""The mix-and-match adapter (MAM); registers the ``mam`` method."""

from adapterkit.methods import register_method
from adapterkit.methods.mam.config import MamConfig

register_method(MamConfig)

__all__ = ["MamConfig"]

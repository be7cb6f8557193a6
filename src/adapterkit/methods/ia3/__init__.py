"""(IA)3; registers the ``ia3`` method."""

from adapterkit.methods import register_method
from adapterkit.methods.ia3.config import Ia3Config
from adapterkit.methods.ia3.layer import Ia3Adapter

register_method(Ia3Config)

__all__ = ["Ia3Adapter", "Ia3Config"]

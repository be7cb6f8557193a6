"""AdaLoRA; registers the ``adalora`` method."""

from adapterkit.methods import register_method
from adapterkit.methods.adalora.config import AdaLoraConfig
from adapterkit.methods.adalora.layer import AdaLoraAdapter

register_method(AdaLoraConfig)

__all__ = ["AdaLoraAdapter", "AdaLoraConfig"]

"""LoRA; registers the ``lora`` method."""

from adapterkit.methods import register_method
from adapterkit.methods.lora.config import LoraConfig
from adapterkit.methods.lora.layer import LoraAdapter

register_method(LoraConfig)

__all__ = ["LoraAdapter", "LoraConfig"]

"""Prefix tuning; registers the ``prefix`` method."""

from adapterkit.methods import register_method
from adapterkit.methods.prefix.config import PrefixConfig
from adapterkit.methods.prefix.layer import PrefixAdapter

register_method(PrefixConfig)

__all__ = ["PrefixAdapter", "PrefixConfig"]

"""The ``head`` and ``full`` baselines: no adapter modules at all.

``head`` trains only the task head on a frozen base; ``full`` also unfreezes the
base (full fine-tuning). Both need a named slot for the head, so they register a
method that adapts no layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from adapterkit.methods.base import AdapterConfig, AdapterModule


@dataclass
class NoAdapterConfig(AdapterConfig):
    """Adapts nothing; the slot only carries a head (and, for ``full``, the base weights)."""

    method: ClassVar[str] = "none"

    def roles(self) -> list[str]:
        return []

    def build(self, in_features: int, out_features: int, tap_features: int | None) -> AdapterModule:
        raise AssertionError("NoAdapterConfig builds no modules")

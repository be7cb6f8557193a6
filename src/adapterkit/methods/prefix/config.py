"""Configuration of prefix tuning (Li & Liang 2021)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from adapterkit.errors import AdapterkitError
from adapterkit.methods.base import AdapterConfig, AdapterModule, BaseWeights, LayerSpec

KEY_LAYERS = frozenset({"k", "key", "k_lin", "k_proj"})
VALUE_LAYERS = frozenset({"v", "value", "v_lin", "v_proj"})
FUSED_LAYERS = frozenset({"c_attn"})
"""Projection names by what they project (the last part of a layer's dotted name): BERT
and RoBERTa, DistilBERT, Llama-like and BART models, T5; GPT-2's ``c_attn`` holds the
query, key and value in thirds."""


@dataclass
class PrefixConfig(AdapterConfig):
    """Learned keys and values prepended in every attention layer (self- and
    cross-attention); the base's layers stay as they are.

    Each row's prefix applies to that row only, so prefix adapters route per row beside any
    other method. The attention runs through transformers' attention interface (``sdpa``
    or ``eager``), where the prefix joins the keys and values after any KV cache, so a
    cache holds only real tokens and generation reuses it unchanged.
    """

    prefix_length: int = field(default=20, metadata={"min": 1, "max": 4096})
    """Number of learned key/value vectors per attention layer (virtual tokens)."""

    prefix_projection: int = field(default=128, metadata={"min": 0, "max": 65536})
    """Hidden width of the MLP that produces each layer's keys and values while training (Li
    & Liang's reparameterisation); a saved bundle stores only its output. 0 trains the keys
    and values directly."""

    method: ClassVar[str] = "prefix"

    def roles(self) -> list[str]:
        return ["attn_kv"]

    def build_layer(self, spec: LayerSpec, base: BaseWeights) -> AdapterModule:
        from adapterkit.methods.prefix.layer import PrefixAdapter

        return PrefixAdapter(
            projection_parts(spec.name, spec.out_features, self.method),
            self.prefix_length,
            self.prefix_projection,
        )

    def prepare_model(self, model: nn.Module, targets: list[str]) -> None:
        from adapterkit.methods.prefix.attention import check_and_install

        check_and_install(model, targets, self.method)

    def bundle_config(self) -> AdapterConfig:
        """A bundle stores the MLP's output, which a prefix without the MLP holds."""
        return dataclasses.replace(self, prefix_projection=0)


def is_key_value_projection(name: str) -> bool:
    """Whether layer ``name`` projects an attention's keys and/or values (by its last name part)."""
    return name.rsplit(".", 1)[-1] in KEY_LAYERS | VALUE_LAYERS | FUSED_LAYERS


def projection_parts(name: str, out_features: int, method: str) -> dict[str, int]:
    """What the projection ``name`` supplies to its attention: ``key`` and/or ``value``,
    each with its width.

    Raises:
        AdapterkitError: The layer is not a key or value projection this method knows.
    """
    last = name.rsplit(".", 1)[-1]
    if last in KEY_LAYERS:
        return {"key": out_features}
    if last in VALUE_LAYERS:
        return {"value": out_features}
    if last in FUSED_LAYERS:
        return {"key": out_features // 3, "value": out_features // 3}
    known = ", ".join(sorted(KEY_LAYERS | VALUE_LAYERS | FUSED_LAYERS))
    raise AdapterkitError(
        f"{method}: --target-modules: '{name}' is not an attention key or value projection "
        f"that prefix tuning knows (their last name part is one of {known})"
    )

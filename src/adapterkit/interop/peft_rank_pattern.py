"""A PEFT LoRA folder with a rank or an alpha per layer, imported as an AdaLoRA bundle.

``rank_pattern``/``alpha_pattern`` give layers their own rank and alpha: what our AdaLoRA
export writes (:mod:`adapterkit.interop.adalora_export`) and what peft users set by hand.
One LoRA config has one rank and one scaling, but an AdaLoRA layer at its final rank
computes ``s · Q diag(λ) P x``, which holds any layer's ``(alpha_l / r_l) · B A x`` exactly:
``P = A``, ``Q = B``, ``λ = alpha_l / r_l / s`` for each of the layer's ``r_l`` ranks. The
bundle then serves, merges and exports as every AdaLoRA bundle does.

Ranks are read from the tensors' shapes, and must be the ones the config states. Both
patterns are looked up as peft does, the first key that the layer's module name ends with;
a key that matches no layer word for word is refused, since peft reads keys as regular
expressions and one that matched in peft would be scaled wrong here.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from adapterkit.errors import AdapterkitError
from adapterkit.methods import AdapterConfig, make_config

Layers = dict[str, dict[str, torch.Tensor]]
LORA_PARAMS = ("lora_A.weight", "lora_B.weight")


def has_layer_patterns(config: dict[str, Any], layers: Layers) -> bool:
    """Whether a PEFT LoRA folder gives its layers ranks or alphas of their own."""
    ranks = {p["lora_A.weight"].shape[0] for p in layers.values() if "lora_A.weight" in p}
    return bool(config.get("rank_pattern") or config.get("alpha_pattern")) or len(ranks) > 1


def adalora_from_patterns(
    config: dict[str, Any], layers: Layers, layer_prefix: str
) -> tuple[AdapterConfig, Layers]:
    """The AdaLoRA config (its final ranks fixed) and tensors for a LoRA folder whose layers
    have ranks or alphas of their own (see the module docs)."""
    if config.get("use_dora") is True:
        raise AdapterkitError("DoRA with a rank or alpha per layer is not imported")
    for option in ("rank_pattern", "alpha_pattern"):
        if not isinstance(config.get(option) or {}, dict):
            raise AdapterkitError(f"{option} must be an object of module names")
    for layer, params in layers.items():
        if sorted(params) != sorted(LORA_PARAMS):
            raise AdapterkitError(
                f"layer {layer} holds {', '.join(sorted(params))}; a LoRA layer holds "
                f"{' and '.join(LORA_PARAMS)}"
            )
        if params["lora_A.weight"].shape[0] == 0:
            raise AdapterkitError(f"layer {layer} has rank 0")
    names = {layer: layer_prefix + layer for layer in layers}
    ranks = {layer: int(params["lora_A.weight"].shape[0]) for layer, params in layers.items()}
    stated = _by_pattern(config, "rank_pattern", config.get("r", 8), names)
    wrong = next((layer for layer in layers if stated[layer] != ranks[layer]), None)
    if wrong is not None:  # peft itself would not load these weights
        raise AdapterkitError(
            f"layer {wrong} has rank {ranks[wrong]} in its weights but {stated[wrong]} in "
            "the config"
        )
    alphas = _by_pattern(config, "alpha_pattern", config.get("lora_alpha", 8), names)
    rslora = config.get("use_rslora", False)
    if not isinstance(rslora, bool):
        raise AdapterkitError(f"use_rslora must be true or false, got {rslora!r}")
    top = max(ranks.values())
    # Scaling 1 (alpha = r); each layer's own scaling goes into its λ.
    adalora = make_config(
        "adalora",
        target_modules=sorted(layers),
        r=top,
        target_r=top,
        alpha=top,
        dropout=config.get("lora_dropout", 0.0),
        rank_pattern=ranks,
    )
    converted: Layers = {}
    for layer, params in layers.items():
        rank = ranks[layer]
        scaling = alphas[layer] / (math.sqrt(rank) if rslora else rank)
        converted[layer] = {
            "lora_A": params["lora_A.weight"],
            "lora_E": torch.full((rank,), scaling, dtype=params["lora_A.weight"].dtype),
            "lora_B": params["lora_B.weight"],
            "rank_mask": torch.ones(rank, dtype=params["lora_A.weight"].dtype),
        }
    return adalora, converted


def _by_pattern(config: dict[str, Any], option: str, default: Any, names: dict[str, str]) -> dict:
    """Each layer's value of ``option`` (``rank_pattern``, ``alpha_pattern``): the first key
    its module name ends with, as peft matches them, else ``default``. Values must be
    positive numbers."""
    pattern: dict[str, Any] = config.get(option) or {}
    for value in (default, *pattern.values()):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise AdapterkitError(f"{option}: values must be positive numbers, got {value!r}")

    def ends_with(name: str, key: str) -> bool:
        return name == key or name.endswith("." + key)

    unmatched = [key for key in pattern if not any(ends_with(n, key) for n in names.values())]
    if unmatched:
        raise AdapterkitError(
            f"{option} key '{unmatched[0]}' names no adapted layer word for word "
            "(regular expressions are not imported)"
        )
    return {
        layer: next((v for k, v in pattern.items() if ends_with(name, k)), default)
        for layer, name in names.items()
    }

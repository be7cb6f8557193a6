"""An AdaLoRA bundle as a PEFT LoRA adapter with a rank per layer.

The bundle's layers in LoRA's form (:mod:`adapterkit.methods.adalora.lora_form`), each at
its own rank: PEFT's LoRA holds exactly that with ``rank_pattern`` (each layer's rank) and
``alpha_pattern`` (each layer's alpha, chosen so that alpha / rank is AdaLoRA's scaling
``s``, which stays that of the initial rank). Layers left at rank 0 adapt nothing and are
left out (PEFT refuses a rank of 0). Serving stacks that load LoRA with one rank for all
layers (vLLM) may not read the patterns.
"""

from __future__ import annotations

from typing import Any

import torch

from adapterkit.methods.adalora.lora_form import lora_form


def adalora_as_lora(
    tensors: dict[str, torch.Tensor], targets: list[str]
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """LoRA-named tensors (``adapter.<layer>.lora_A.weight`` / ``lora_B.weight``, heads kept)
    and the rank of every layer that keeps at least one, in ``targets`` order."""
    converted = lora_form(tensors, targets)
    ranks: dict[str, int] = {}
    for layer in targets:
        rank = converted[f"adapter.{layer}.lora_A.weight"].shape[0]
        if rank == 0:
            del converted[f"adapter.{layer}.lora_A.weight"]
            del converted[f"adapter.{layer}.lora_B.weight"]
        else:
            ranks[layer] = rank
    return converted, ranks


def rank_patterns(ranks: dict[str, int], layer_prefix: str, scaling: float) -> dict[str, Any]:
    """PEFT LoRA config entries for per-layer ranks: the largest rank as ``r``, each layer's
    own in ``rank_pattern``, and alphas that keep ``alpha / rank`` equal to ``scaling``."""
    top = max(ranks.values())
    return {
        "r": top,
        "lora_alpha": scaling * top,
        "rank_pattern": {layer_prefix + layer: r for layer, r in ranks.items()},
        "alpha_pattern": {layer_prefix + layer: scaling * r for layer, r in ranks.items()},
    }

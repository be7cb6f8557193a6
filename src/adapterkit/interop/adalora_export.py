"""An AdaLoRA bundle as a PEFT LoRA adapter with a rank per layer.

A trained AdaLoRA layer computes ``s · Q diag(λ ⊙ m) P x``: the LoRA update ``B A x`` with
``A = diag(λ ⊙ m) P`` and ``B = Q``, at that layer's own rank. PEFT's LoRA holds exactly
that with ``rank_pattern`` (each layer's rank) and ``alpha_pattern`` (each layer's alpha,
chosen so that alpha / rank is AdaLoRA's scaling ``s``, which stays that of the initial
rank). Layers left at rank 0 adapt nothing and are left out (PEFT refuses a rank of 0).
Serving stacks that load LoRA with one rank for all layers (vLLM) may not read the
patterns.
"""

from __future__ import annotations

from typing import Any

import torch


def adalora_as_lora(
    tensors: dict[str, torch.Tensor], targets: list[str]
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """LoRA-named tensors (``adapter.<layer>.lora_A.weight`` / ``lora_B.weight``, heads kept)
    and the rank of every layer that keeps at least one, in ``targets`` order."""
    converted = {k: v for k, v in tensors.items() if not k.startswith("adapter.")}
    ranks: dict[str, int] = {}
    for layer in targets:
        values = tensors[f"adapter.{layer}.lora_E"] * tensors[f"adapter.{layer}.rank_mask"]
        if values.numel() == 0:
            continue
        ranks[layer] = int(values.numel())
        converted[f"adapter.{layer}.lora_A.weight"] = (
            values.unsqueeze(1) * tensors[f"adapter.{layer}.lora_A"]
        ).contiguous()
        converted[f"adapter.{layer}.lora_B.weight"] = tensors[f"adapter.{layer}.lora_B"]
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

"""A PEFT AdaLoRA folder (``peft_type`` ADALORA) imported as an adapterkit AdaLoRA bundle.

PEFT's AdaLoRA layer computes ``B (A ⊙ E) x · alpha / (init_r + 1e-5)`` (``alpha`` is
``lora_alpha``, or ``init_r`` when that is 0) and saves each layer at the ranks its
schedule kept: ``lora_A`` (k, in), ``lora_B`` (out, k), ``lora_E`` (k, 1), with
``rank_pattern`` naming which of the ``init_r`` ranks survive. Ours computes
``s · Q diag(λ) P x`` with ``s = alpha / r``: the same layer with ``P = A``, ``Q = B``,
``r = init_r`` and ``λ = E · init_r / (init_r + 1e-5)`` (PEFT's epsilon folded in). The
bundle records the kept ranks as its ``rank_pattern`` and serves, merges and exports as
every AdaLoRA bundle does.
"""

from __future__ import annotations

from typing import Any

import torch

from adapterkit.errors import AdapterkitError
from adapterkit.methods import AdapterConfig, make_config

Layers = dict[str, dict[str, torch.Tensor]]
ADALORA_KEYS = {"lora_A": "lora_A", "lora_B": "lora_B", "lora_E": "lora_E"}
"""Parameter names inside one PEFT AdaLoRA layer: ours -> PEFT's (no ``.weight``)."""
PEFT_EPSILON = 1e-5
"""What PEFT adds to the rank it divides by."""


def adalora_from_peft(
    config: dict[str, Any], layers: Layers, layer_prefix: str
) -> tuple[AdapterConfig, Layers]:
    """Our AdaLoRA config (its kept ranks as ``rank_pattern``) and tensors for a PEFT
    AdaLoRA folder's config and layers (see the module docs).

    Raises:
        AdapterkitError: A layer without its three tensors, tensors whose shapes disagree,
            or a ``rank_pattern`` that does not say the ranks the weights hold (one line).
    """
    init_r = config.get("init_r", 12)
    if isinstance(init_r, bool) or not isinstance(init_r, int) or init_r < 1:
        raise AdapterkitError(f"init_r must be a positive integer, got {init_r!r}")
    alpha = config.get("lora_alpha", 8)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float):
        raise AdapterkitError(f"lora_alpha must be a number, got {alpha!r}")
    pattern = config.get("rank_pattern") or {}
    if not isinstance(pattern, dict):
        raise AdapterkitError("rank_pattern must be an object of module names")
    kept = _kept_ranks(pattern, init_r, layer_prefix)
    ranks: dict[str, int] = {}
    converted: Layers = {}
    for layer, params in sorted(layers.items()):
        if sorted(params) != sorted(ADALORA_KEYS):
            raise AdapterkitError(
                f"layer {layer} holds {', '.join(sorted(params))}; an AdaLoRA layer holds "
                "lora_A, lora_B and lora_E"
            )
        a, b, e = params["lora_A"], params["lora_B"], params["lora_E"]
        rank = a.shape[0] if a.dim() == 2 else -1
        if rank < 0 or b.dim() != 2 or b.shape[1] != rank or e.numel() != rank or rank > init_r:
            raise AdapterkitError(
                f"layer {layer}: lora_A {tuple(a.shape)}, lora_B {tuple(b.shape)} and lora_E "
                f"{tuple(e.shape)} are not one AdaLoRA layer of at most init_r={init_r} ranks"
            )
        if pattern and kept.get(layer, init_r) != rank:
            raise AdapterkitError(
                f"layer {layer} holds {rank} ranks but rank_pattern keeps {kept.get(layer, init_r)}"
            )
        ranks[layer] = rank
        converted[layer] = {
            "lora_A": a,
            "lora_B": b,
            "lora_E": e.reshape(-1) * (init_r / (init_r + PEFT_EPSILON)),
            "rank_mask": torch.ones(rank, dtype=a.dtype),
        }
    unknown = sorted(set(kept) - set(layers))
    if unknown:
        raise AdapterkitError(
            f"rank_pattern names {layer_prefix}{unknown[0]}, which has no weights"
        )
    target_r = config.get("target_r", 8)
    adalora = make_config(
        "adalora",
        target_modules=sorted(layers),
        r=init_r,
        # The schedule has run: its target matters only to a run that continues the bundle.
        target_r=min(target_r, init_r) if isinstance(target_r, int) else target_r,
        alpha=alpha if alpha > 0 else float(init_r),
        dropout=config.get("lora_dropout", 0.0),
        rank_pattern=ranks,
    )
    return adalora, converted


def _kept_ranks(pattern: dict[str, Any], init_r: int, layer_prefix: str) -> dict[str, int]:
    """Each layer's kept rank from PEFT's ``rank_pattern``: keys name a layer's ``lora_E``
    (``<module>.lora_E``, sometimes with the adapter's name after it), values are one
    true/false per initial rank."""
    kept: dict[str, int] = {}
    for key, mask in pattern.items():
        module, found, _ = key.partition(".lora_E")
        if not found or not module.startswith(layer_prefix):
            raise AdapterkitError(f"rank_pattern key '{key}' names no layer's lora_E")
        if (
            not isinstance(mask, list)
            or len(mask) != init_r
            or not all(isinstance(m, bool) for m in mask)
        ):
            raise AdapterkitError(
                f"rank_pattern['{key}'] must be {init_r} true/false values (one per initial rank)"
            )
        kept[module.removeprefix(layer_prefix)] = sum(mask)
    return kept

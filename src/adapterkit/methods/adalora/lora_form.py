"""A trained AdaLoRA adapter's tensors in LoRA's form.

Each AdaLoRA layer computes ``s · Q diag(λ ⊙ m) P x``: the LoRA update ``s · B A x`` with
``A = diag(λ ⊙ m) P`` and ``B = Q``, at that layer's own rank (``s`` stays the scaling of
the initial rank). The PEFT export writes these factors, and ``merge`` combines them as
the LoRA deltas they are.
"""

from __future__ import annotations

import torch

from adapterkit.errors import BundleError

ADALORA_PARAMS = ("lora_A", "lora_B", "lora_E", "rank_mask")
"""An AdaLoRA layer's tensors in a bundle (``adapter.<layer>.<param>``)."""


def lora_form(tensors: dict[str, torch.Tensor], targets: list[str]) -> dict[str, torch.Tensor]:
    """Every layer of ``targets`` as LoRA factors ``adapter.<layer>.lora_A.weight`` (rank,
    in) and ``lora_B.weight`` (out, rank); a layer left at rank 0 gets empty factors.
    Tensors that are not AdaLoRA's (the head, bias and norm extras) are kept as they are."""
    suffixes = tuple(f".{param}" for param in ADALORA_PARAMS)
    converted = {
        k: v for k, v in tensors.items() if not (k.startswith("adapter.") and k.endswith(suffixes))
    }
    for layer in targets:
        a, b, e, mask = _layer(tensors, layer)
        converted[f"adapter.{layer}.lora_A.weight"] = ((e * mask).unsqueeze(1) * a).contiguous()
        converted[f"adapter.{layer}.lora_B.weight"] = b
    return converted


def _layer(
    tensors: dict[str, torch.Tensor], layer: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One layer's P (k, in), Q (out, k), λ (k,) and mask (k,), checked to fit each other.

    Raises:
        BundleError: A tensor missing or of a shape that is not one layer of rank k.
    """
    missing = [p for p in ADALORA_PARAMS if f"adapter.{layer}.{p}" not in tensors]
    if missing:
        raise BundleError(f"AdaLoRA layer {layer} has no {missing[0]} tensor")
    a, b, e, mask = (tensors[f"adapter.{layer}.{p}"] for p in ADALORA_PARAMS)
    rank = e.shape[0] if e.dim() == 1 else -1
    if not (a.dim() == b.dim() == 2 and a.shape[0] == b.shape[1] == rank) or mask.shape != e.shape:
        raise BundleError(
            f"AdaLoRA layer {layer}: lora_A {tuple(a.shape)}, lora_B {tuple(b.shape)}, lora_E "
            f"{tuple(e.shape)} and rank_mask {tuple(mask.shape)} are not one layer of one rank"
        )
    return a, b, e, mask

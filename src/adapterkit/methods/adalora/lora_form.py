"""A trained AdaLoRA adapter's tensors in LoRA's form.

Each AdaLoRA layer computes ``s · Q diag(λ ⊙ m) P x``: the LoRA update ``s · B A x`` with
``A = diag(λ ⊙ m) P`` and ``B = Q``, at that layer's own rank (``s`` stays the scaling of
the initial rank). The PEFT export writes these factors, and ``merge`` combines them as
the LoRA deltas they are.
"""

from __future__ import annotations

import torch

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
        values = tensors[f"adapter.{layer}.lora_E"] * tensors[f"adapter.{layer}.rank_mask"]
        converted[f"adapter.{layer}.lora_A.weight"] = (
            values.unsqueeze(1) * tensors[f"adapter.{layer}.lora_A"]
        ).contiguous()
        converted[f"adapter.{layer}.lora_B.weight"] = tensors[f"adapter.{layer}.lora_B"]
    return converted

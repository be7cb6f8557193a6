"""A fingerprint of a base model, so a bundle can refuse to load onto another base.

Two parts: ``structure`` hashes the architecture and every parameter's name and
shape; ``weights`` hashes 16 evenly spaced values of every parameter, rounded to
bfloat16 so the same checkpoint loaded in fp32 or bf16 still matches. Sampling
keeps this cheap (milliseconds for a 100M-parameter model) while a different
checkpoint with the same shapes, e.g. a random initialisation, still differs.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

_SAMPLES_PER_TENSOR = 16


ADAPTER_SLOTS = (".adapters.", ".base_tuning.")
"""Where an adapter host keeps its adapters' modules: parameter names with one of these
parts belong to adapters, not to the base."""


def is_adapter_parameter(name: str) -> bool:
    """Whether the parameter (or module) ``name`` of an adapted model belongs to an adapter."""
    return any(slot in name for slot in ADAPTER_SLOTS)


def _base_parameters(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Base parameters with adapter wrappers' names undone (``x.base_layer.weight`` -> ``x.weight``)."""
    out = []
    for name, param in model.named_parameters(remove_duplicate=True):
        if is_adapter_parameter(name):
            continue
        out.append((name.replace(".base_layer.", "."), param))
    return sorted(out, key=lambda item: item[0])


@torch.no_grad()
def fingerprint_model(model: nn.Module) -> dict[str, str]:
    """Architecture name plus structure and sampled-weights hashes of ``model``."""
    config = getattr(model, "config", None)
    architecture = f"{type(model).__name__}/{getattr(config, 'model_type', 'unknown')}"
    structure = hashlib.sha256(architecture.encode())
    weights = hashlib.sha256()
    for name, param in _base_parameters(model):
        structure.update(f"{name}:{tuple(param.shape)};".encode())
        flat = param.detach().reshape(-1)
        # Integer arithmetic: float linspace rounds past the end for tensors over 2**24 values.
        index = (
            torch.arange(_SAMPLES_PER_TENSOR, device=flat.device)
            * (flat.numel() - 1)
            // (_SAMPLES_PER_TENSOR - 1)
        )
        sample = flat[index].to(torch.bfloat16).view(torch.int16).cpu().numpy().tobytes()
        weights.update(sample)
    return {
        "architecture": architecture,
        "structure": structure.hexdigest()[:16],
        "weights": weights.hexdigest()[:16],
    }


def describe(fingerprint: dict[str, str], name: str | None) -> str:
    """A short human-readable form for error messages."""
    label = name or "unnamed model"
    return f"'{label}' ({fingerprint.get('architecture')}, {fingerprint.get('structure')}/{fingerprint.get('weights')})"

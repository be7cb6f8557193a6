"""Bias and norm tuning beside any method (``--train-bias``, ``--train-norms``).

BitFit (Ben Zaken et al. 2022) trains the base model's bias terms; Houlsby et al. (2019)
train the layer norms beside their adapters. Training the frozen base's own tensors would
tie the shared base to one adapter, so each adapter learns *changes* of them instead,
applied to its own rows only, like any adapter:

    bias of a linear layer:   y' = y + Δb                     (b' = b + Δb)
    normalisation layer:      y' = y + s ⊙ (y − β) + Δβ       (γ' = (1 + s) γ, β' = β + Δβ)

Both start at zero, so a fresh adapter is the identity, and both fold exactly into the
base weights (merge). The norm form needs no access to the normalised input: for
``y = γ x̂ + β``, ``(1 + s) γ x̂ + β + Δβ = y + s (y − β) + Δβ``. A norm without a bias
(RMSNorm) learns the scale only.
"""

from __future__ import annotations

import torch
from torch import nn

from adapterkit.errors import AdapterkitError

MERGE_CHECK_TOLERANCE = 1e-4
"""Largest relative difference allowed between a norm run with merged weights and the
shifted output it must reproduce (the check catches norms parametrised otherwise, such
as Gemma's ``1 + weight``)."""


def is_norm_layer(module: nn.Module) -> bool:
    """A leaf normalisation layer with a learned per-channel weight (LayerNorm, RMSNorm,
    T5LayerNorm ...), recognised by class name, so that any architecture's norm counts."""
    weight = getattr(module, "weight", None)
    return (
        "Norm" in type(module).__name__
        and next(module.children(), None) is None
        and isinstance(weight, nn.Parameter)
        and weight.dim() == 1
    )


class BaseTuning(nn.Module):
    """One adapter's learned change of one base layer's bias, or of one norm's weight and bias."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.is_norm = is_norm_layer(layer)
        bias = getattr(layer, "bias", None)
        width = layer.weight.shape[0] if self.is_norm else bias.shape[0]
        reference = layer.weight if layer.weight.is_floating_point() else bias
        make = {"device": reference.device, "dtype": reference.dtype}
        if not layer.weight.is_floating_point():
            make["dtype"] = torch.float32  # a quantized layer: train in full precision
        self.scale = nn.Parameter(torch.zeros(width, **make)) if self.is_norm else None
        self.shift = nn.Parameter(torch.zeros(width, **make)) if bias is not None else None

    def forward(self, out: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        """The base layer's output ``out`` with this change applied."""
        result = out
        if self.scale is not None:
            bias = getattr(layer, "bias", None)
            centred = out if bias is None else out - bias.to(out.dtype)
            result = result + centred * self.scale.to(out.dtype)
        if self.shift is not None:
            result = result + self.shift.to(out.dtype)
        return result

    @torch.no_grad()
    def merge_into(self, layer: nn.Module) -> None:
        """Fold the change into ``layer``'s own weight and bias (undone by :meth:`unmerge_from`)."""
        self._check_mergeable(layer)
        if self.scale is not None:
            layer.weight.copy_(
                (layer.weight.double() * (1 + self.scale.double())).to(layer.weight.dtype)
            )
        if self.shift is not None:
            layer.bias.copy_((layer.bias.double() + self.shift.double()).to(layer.bias.dtype))

    @torch.no_grad()
    def unmerge_from(self, layer: nn.Module) -> None:
        """Undo :meth:`merge_into`."""
        if self.shift is not None:
            layer.bias.copy_((layer.bias.double() - self.shift.double()).to(layer.bias.dtype))
        if self.scale is not None:
            layer.weight.copy_(
                (layer.weight.double() / (1 + self.scale.double())).to(layer.weight.dtype)
            )

    @torch.no_grad()
    def _check_mergeable(self, layer: nn.Module) -> None:
        """Refuse a merge that would not reproduce this change: a norm scale of −1 (a zero
        weight cannot be unmerged) or a norm that does not scale by its ``weight``."""
        if self.scale is None:
            return
        if (1 + self.scale).abs().min().item() < 1e-6:
            raise AdapterkitError("a norm scale of -1 would zero the norm's weight; cannot merge")
        probe = torch.randn(
            2, 3, self.scale.shape[0], generator=torch.Generator().manual_seed(0)
        ).to(device=layer.weight.device, dtype=layer.weight.dtype)
        wanted = self(layer(probe), layer)
        bias = getattr(layer, "bias", None)
        saved = layer.weight.detach().clone(), None if bias is None else bias.detach().clone()
        layer.weight.mul_(1 + self.scale.to(layer.weight.dtype))
        if self.shift is not None:
            layer.bias.add_(self.shift.to(layer.bias.dtype))
        got = layer(probe)
        layer.weight.copy_(saved[0])
        if saved[1] is not None:
            layer.bias.copy_(saved[1])
        error = (got - wanted).abs().max() / wanted.abs().max().clamp_min(1e-12)
        if error.item() > MERGE_CHECK_TOLERANCE:
            raise AdapterkitError(
                f"norm tuning cannot be merged into a {type(layer).__name__}: it does not scale "
                "its output by its weight"
            )

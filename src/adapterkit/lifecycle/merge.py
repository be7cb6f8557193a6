"""The arithmetic of merging adapters: pure functions on tensors, no bundles or files.

Two kinds of merge:

- Full parameters (bottleneck adapters, IA3 scales, heads): a weighted average
  ``Σ w_i θ_i / Σ w_i`` (:func:`weighted_average`).
- LoRA updates (:func:`merge_lora_layer`): each parent's update of a layer is the dense
  delta ``Δ_i = s_i B_i A_i`` (out, in), so parents of different ranks, alphas or rsLoRA
  settings merge. The deltas are combined by ``linear`` (``Σ w_i Δ_i``: task arithmetic,
  an average with weights 1/N), ``ties`` (:func:`ties`) or ``dare`` (:func:`dare`), and
  the result is factored back to a rank R by truncated SVD, ``B' = U_R √S_R`` and
  ``A' = √S_R V_Rᵀ``, to be used with scaling 1 (alpha = r, no rsLoRA), so that
  ``B' A'`` is the best rank-R approximation of the combined delta (Eckart–Young), as
  AdapterHub's ``lora_delta_w_svd`` does.

A linear combination of N deltas has rank at most ``Σ r_i`` (and at most ``min(out, in)``),
so at the default rank (:func:`merged_rank`) the SVD drops nothing and a linear merge is
exact up to float rounding; only a lower ``--rank`` makes it lossy. TIES and DARE trim and
drop entry by entry, which destroys the low-rank structure: their combined delta is in
general of full rank ``min(out, in)``, so the default rank keeps its largest directions
only, and just R = ``min(out, in)`` keeps it whole. Every layer reports the relative
Frobenius error of its truncation, so the loss is measured, never silent. Everything is
computed in float64; callers cast back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from adapterkit.errors import AdapterkitError

COMBINES = ("linear", "ties", "dare")
"""How LoRA deltas are combined; other methods merge with ``linear`` only."""


@dataclass(frozen=True)
class LowRankDelta:
    """One parent's LoRA update of one layer: ``scaling · b @ a``."""

    a: torch.Tensor
    """(r, in)"""
    b: torch.Tensor
    """(out, r)"""
    scaling: float

    def dense(self) -> torch.Tensor:
        """The (out, in) update, in float64."""
        return self.scaling * (self.b.double() @ self.a.double())


@dataclass(frozen=True)
class Factored:
    """A merged update as LoRA factors for scaling 1, and what the truncation lost."""

    a: torch.Tensor
    """(rank, in), float64"""
    b: torch.Tensor
    """(out, rank), float64"""
    relative_error: float
    """``‖Δ − B A‖_F / ‖Δ‖_F`` of the combined delta Δ (0 when Δ is zero)."""


def weighted_average(tensors: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """``Σ w_i t_i / Σ w_i`` in float64.

    Raises:
        AdapterkitError: When the weights sum to zero (no average exists).
    """
    total = float(sum(weights))
    if total == 0:
        raise AdapterkitError("the weights sum to 0, so the tensors have no weighted average")
    return sum(w / total * t.double() for w, t in zip(weights, tensors, strict=True))


def trim(delta: torch.Tensor, density: float) -> torch.Tensor:
    """``delta`` with all but its ``density`` share of largest-magnitude entries set to 0
    (TIES' trim step; at least one entry is kept)."""
    keep = max(1, round(density * delta.numel()))
    if keep >= delta.numel():
        return delta
    flat = delta.reshape(-1)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[flat.abs().topk(keep).indices] = True
    return (flat * mask).reshape(delta.shape)


def ties(deltas: Sequence[torch.Tensor], weights: Sequence[float], density: float) -> torch.Tensor:
    """TIES-merging (Yadav et al. 2023) of same-shaped task vectors.

    Trim each delta to its top ``density`` share by magnitude; elect each entry's sign as
    the sign of the trimmed deltas' sum (their total mass; a tie goes to +); then average,
    entry by entry, only the weighted entries whose sign agrees with the elected one (the
    disjoint mean: an entry kept by one parent is not diluted by the others' zeros). With
    every weight equal to λ this is the paper's ``λ · disjoint mean``; per-parent weights
    enter before the mean, as in PEFT's ``ties``.
    """
    trimmed = torch.stack([trim(d.double(), density) for d in deltas])  # (N, *shape)
    elected = torch.where(trimmed.sum(0) >= 0, 1.0, -1.0).to(trimmed.dtype)
    agrees = trimmed.sign() == elected  # entries trimmed to 0 agree with nothing
    scale = torch.tensor(weights, dtype=trimmed.dtype).view(-1, *[1] * (trimmed.dim() - 1))
    summed = (scale * trimmed * agrees).sum(0)
    return summed / agrees.sum(0).clamp(min=1)


def drop_and_rescale(
    delta: torch.Tensor, density: float, generator: torch.Generator
) -> torch.Tensor:
    """DARE's step (Yu et al. 2024): keep each entry with probability ``density`` and divide
    the kept ones by it, so the expected value of every entry is unchanged."""
    keep = torch.rand(delta.shape, generator=generator, dtype=torch.float64) < density
    return delta.double() * keep / density


def dare(
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    density: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """DARE: drop and rescale each delta (:func:`drop_and_rescale`), then their weighted sum.
    The masks come from ``generator``, so a seeded generator makes the merge reproducible."""
    return sum(
        w * drop_and_rescale(d, density, generator) for w, d in zip(weights, deltas, strict=True)
    )


def merged_rank(
    requested: int | None, parent_ranks: Iterable[int], shapes: Iterable[tuple[int, int]]
) -> int:
    """The rank of a merged LoRA: ``requested`` or the sum of the parents' ranks (at which a
    linear merge is exact), capped at the largest rank a layer's delta can have.

    ``shapes`` are the adapted layers' (out, in). No delta has a rank above ``min(out, in)``,
    so more would store zeros; and a LoRA's rank must not exceed any of its layers' widths
    (``LoraConfig.check_rank``).
    """
    shapes = list(shapes)
    wanted = requested if requested is not None else sum(parent_ranks)
    if not shapes:  # an adapter of no layers: nothing caps it
        return wanted
    cap = min(max(min(s) for s in shapes), min(max(s) for s in shapes))
    return min(wanted, cap)


def merge_lora_layer(
    parts: Sequence[LowRankDelta],
    weights: Sequence[float],
    combine: str,
    rank: int,
    density: float = 1.0,
    generator: torch.Generator | None = None,
) -> Factored:
    """Combine the parents' updates of one layer and factor the result to ``rank``.

    Args:
        parts: One update per parent, same (out, in), any ranks and scalings.
        weights: One per parent (see :func:`ties` and :func:`dare` for how those use them).
        combine: ``linear``, ``ties`` or ``dare``.
        rank: Rank of the factors returned (zero-padded where the delta has fewer singular
            values, so every layer of a merged adapter has one rank).
        density: Share of entries kept by ``ties`` and ``dare``.
        generator: DARE's random source.
    """
    if combine == "linear":
        u, s, vh = _svd_of_sum(parts, weights)
    else:
        deltas = [p.dense() for p in parts]
        if combine == "ties":
            merged = ties(deltas, weights, density)
        else:
            merged = dare(deltas, weights, density, generator or torch.Generator())
        u, s, vh = torch.linalg.svd(merged, full_matrices=False)
    return truncate(u, s, vh, rank)


def _svd_of_sum(
    parts: Sequence[LowRankDelta], weights: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SVD of ``Σ w_i s_i B_i A_i`` from the factors alone.

    With ``B = [w_i s_i B_i]`` (out, K) and ``A = [A_i]`` (K, in), K = Σ r_i, the QR
    factorisations ``B = Q_b R_b`` and ``Aᵀ = Q_a R_a`` leave the SVD of the small
    ``R_b R_aᵀ`` (at most K × K): no (out, in) matrix is ever formed, where a dense SVD of
    a 4096 × 4096 delta would cost seconds per layer.
    """
    b = torch.cat([w * p.scaling * p.b.double() for w, p in zip(weights, parts, strict=True)], 1)
    a = torch.cat([p.a.double() for p in parts], 0)
    q_b, r_b = torch.linalg.qr(b)  # (out, k_b), (k_b, K)
    q_a, r_a = torch.linalg.qr(a.T)  # (in, k_a), (k_a, K)
    u, s, vh = torch.linalg.svd(r_b @ r_a.T, full_matrices=False)
    return q_b @ u, s, vh @ q_a.T


def truncate(u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, rank: int) -> Factored:
    """Factors ``B = U_R √S_R`` (out, rank) and ``A = √S_R V_Rᵀ`` (rank, in) of an SVD kept
    to its ``rank`` largest singular values, zero-padded when it has fewer."""
    kept = min(rank, s.numel())
    root = s[:kept].sqrt()
    b = torch.zeros(u.shape[0], rank, dtype=torch.float64)
    a = torch.zeros(rank, vh.shape[1], dtype=torch.float64)
    b[:, :kept] = u[:, :kept] * root
    a[:kept] = root[:, None] * vh[:kept]
    total = s.square().sum()
    error = (s[kept:].square().sum() / total).sqrt().item() if total > 0 else 0.0
    return Factored(a, b, error)

"""``adapterkit merge``: one bundle from several of one method, shape and base.

LoRA parents (AdaLoRA's too: read as the LoRA deltas they are) merge as dense deltas
factored back to a rank (:mod:`.merge`); bottleneck, IA3 and head-only parents as weighted
averages of every tensor. Heads are averaged when all are alike, or one parent's head and
task are kept (``head_from``). Every check runs before anything is written
(:mod:`.merge_checks`) and the bundle is written atomically, so a refused or failed merge
leaves no folder that looks complete. The merged bundle records its parents (name, weights
checksum, weight) and how it was merged, and loads and serves as any other bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adapterkit.bundle import parent_record, write_bundle
from adapterkit.errors import BundleError
from adapterkit.lifecycle.merge import (
    LowRankDelta,
    merge_lora_layer,
    merged_rank,
    weighted_average,
)
from adapterkit.lifecycle.merge_checks import (
    LOW_RANK_METHODS,
    Parent,
    check_parents,
    check_request,
    check_weight_sum,
    head_source,
    merged_name,
    read_parent,
)
from adapterkit.methods import AdapterConfig, config_from_dict
from adapterkit.model_bundles import check_bundle_record

LORA_A, LORA_B = ".lora_A.weight", ".lora_B.weight"
DEFAULT_DENSITY = 0.5


@dataclass(frozen=True)
class MergeOptions:
    """How bundles are merged (the ``merge`` command's flags)."""

    weights: list[float] | None = None
    """One per bundle. LoRA deltas are combined with them as given (task arithmetic:
    ``1 1`` adds both updates); every other tensor (bottleneck, IA3, heads) is averaged
    with them normalised to sum 1. Default: 1/N for ``linear`` and ``dare`` (an average),
    1 for ``ties`` (its disjoint mean already averages: the paper's λ = 1)."""
    combine: str = "linear"
    """``linear``, ``ties`` or ``dare`` (the last two for LoRA only)."""
    density: float | None = None
    """``ties``/``dare``: the share of each delta's entries kept (default 0.5)."""
    rank: int | None = None
    """LoRA: the merged rank (default: the sum of the parents', where a linear merge is
    exact), at most what any layer's delta can have."""
    seed: int = 0
    """``dare``: the seed of its random drops."""
    head_from: str | None = None
    """Keep this bundle's head and task (a 1-based number or its path) instead of averaging
    the heads; needed when they differ."""
    name: str | None = None
    """The merged adapter's name (default: the out folder's name)."""


def merge_bundles(
    paths: Sequence[str | Path], out: str | Path, options: MergeOptions | None = None
) -> dict[str, Any]:
    """Merge the bundles at ``paths`` into a new bundle at ``out``; returns its record.

    Raises:
        AdapterkitError: One line for whatever does not merge (see :mod:`.merge_checks`);
            nothing is written then.
    """
    options = options or MergeOptions()
    paths, out = [Path(p) for p in paths], Path(out)
    check_request(paths, out, options.weights, options.combine, options.density, options.rank)
    name = merged_name(options.name, out)
    parents = [read_parent(p) for p in paths]
    check_parents(parents, options.combine, options.rank)
    keeper = head_source(parents, options.head_from)
    weights = options.weights or default_weights(options.combine, len(parents))
    check_weight_sum(parents, weights, averages_heads=keeper is None)
    if parents[0].config.method in LOW_RANK_METHODS:
        config, tensors, summary = merge_lora(parents, weights, options)
    else:
        config, summary = parents[0].config, {}
        tensors = average(parents, weights, "adapter.")
    source = keeper or parents[0]
    tensors.update(
        average(parents, weights, "head.")
        if keeper is None
        else {k: v for k, v in keeper.tensors.items() if k.startswith("head.")}
    )
    record = {
        "name": name,
        "method": config.method,
        "config": config.to_dict(),
        "targets": parents[0].record.get("targets", []),
        "base_model": parents[0].record["base_model"],
        "head": source.record.get("head"),
        "task": source.record.get("task") or {},
        "includes_base": False,
        "parents": [
            parent_record(p.path, p.record, "merge", w)
            for p, w in zip(parents, weights, strict=True)
        ],
        "merge": {"combine": options.combine, **summary},
    }
    check_bundle_record(record, out)  # what the merged bundle's readers will check
    write_bundle(out, record, tensors)
    return record


def default_weights(combine: str, count: int) -> list[float]:
    """1/N each (an average), or 1 each for ``ties`` (whose disjoint mean averages already)."""
    return [1.0] * count if combine == "ties" else [1.0 / count] * count


def average(
    parents: Sequence[Parent], weights: Sequence[float], prefix: str
) -> dict[str, torch.Tensor]:
    """The weighted average of every tensor whose key starts with ``prefix``, in the first
    parent's dtype (shapes were checked equal)."""
    return {
        key: weighted_average([p.tensors[key] for p in parents], weights).to(tensor.dtype)
        for key, tensor in parents[0].tensors.items()
        if key.startswith(prefix)
    }


def merge_lora(
    parents: Sequence[Parent], weights: Sequence[float], options: MergeOptions
) -> tuple[AdapterConfig, dict[str, torch.Tensor], dict[str, Any]]:
    """LoRA parents merged layer by layer: (merged config, tensors, the record's ``merge``
    details: rank, density and seed where used, worst relative SVD error of a layer)."""
    first = parents[0].tensors
    other = [k for k in first if k.startswith("adapter.") and not k.endswith((LORA_A, LORA_B))]
    if other:  # a LoRA bundle holds factors only; anything else would be dropped silently
        raise BundleError(f"{parents[0].path}: tensor {other[0]} is no LoRA factor")
    layers = sorted(k.removesuffix(LORA_A) for k in first if k.endswith(LORA_A))
    shapes = [(first[layer + LORA_B].shape[0], first[layer + LORA_A].shape[1]) for layer in layers]
    # A parent's rank is its largest layer's: an AdaLoRA parent's layers kept ranks of their own.
    ranks = [
        max((p.tensors[layer + LORA_A].shape[0] for layer in layers), default=p.config.r)
        for p in parents
    ]
    # Parents that kept no rank anywhere (AdaLoRA can prune all): rank 1 of zeros, as a
    # LoRA has a rank of at least 1.
    rank = max(merged_rank(options.rank, ranks, shapes), 1)
    density = (options.density or DEFAULT_DENSITY) if options.combine != "linear" else 1.0
    generator = torch.Generator().manual_seed(options.seed)  # layers in sorted order: reproducible
    tensors: dict[str, torch.Tensor] = {}
    worst = 0.0
    for layer in layers:
        parts = [
            LowRankDelta(p.tensors[layer + LORA_A], p.tensors[layer + LORA_B], p.config.scaling)
            for p in parents
        ]
        merged = merge_lora_layer(parts, weights, options.combine, rank, density, generator)
        tensors[layer + LORA_A] = merged.a.to(first[layer + LORA_A].dtype)
        tensors[layer + LORA_B] = merged.b.to(first[layer + LORA_B].dtype)
        worst = max(worst, merged.relative_error)
    # Scaling 1 (alpha = r, no rsLoRA): the factors hold the merged delta as it is.
    values = {**parents[0].config.to_dict(), "r": rank, "alpha": float(rank), "use_rslora": False}
    summary: dict[str, Any] = {"rank": rank, "svd_relative_error": worst}
    if options.combine != "linear":
        summary["density"] = density
    if options.combine == "dare":
        summary["seed"] = options.seed
    return config_from_dict("lora", values), tensors, summary

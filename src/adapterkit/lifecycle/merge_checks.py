"""What ``adapterkit merge`` refuses, all of it before anything is written.

:func:`check_request` (and :func:`merged_name`) look at the options and paths alone (no
bundle read yet); :func:`check_parents` at the bundles read: one method, one base, one
shape, no full fine-tuning, no DoRA (AdaLoRA parents are read as the LoRA deltas they
are, :func:`read_parent`); :func:`head_source` decides whose head the merge
keeps; :func:`check_weight_sum` refuses weights that have no average. Every refusal is one
line naming the bundle (by its 1-based place on the command line) and what differs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from adapterkit.bundle import check_adapter_name, is_bundle_dir, read_bundle
from adapterkit.errors import AdapterkitError, BundleError
from adapterkit.files import check_not_over_inputs
from adapterkit.lifecycle.merge import COMBINES
from adapterkit.lifecycle.same_base import check_same_base
from adapterkit.methods import AdapterConfig
from adapterkit.methods.adalora.config import AdaLoraConfig
from adapterkit.methods.adalora.lora_form import lora_form
from adapterkit.methods.lora.config import LoraConfig
from adapterkit.model_bundles import check_bundle_record

LOW_RANK_METHODS = ("lora",)
"""Methods whose updates merge as dense deltas (so ranks may differ, and ties/dare apply)."""
RANK_FIELDS = ("r", "alpha", "use_rslora", "dropout")
"""LoRA options parents may differ in: the deltas are merged dense, and dropout only acts
in training."""


@dataclass(frozen=True)
class Parent:
    """One bundle to merge, read and checked."""

    path: Path
    record: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    config: AdapterConfig


def read_parent(path: Path) -> Parent:
    """Read and check the bundle at ``path`` (checksums, record, method config).

    An AdaLoRA bundle comes back as the LoRA it is (its layers' factors at their kept
    ranks, its scaling), so it merges with LoRA and AdaLoRA parents as a LoRA delta; its
    ``record`` stays the bundle's own.
    """
    record, tensors = read_bundle(path)
    config = check_bundle_record(record, path)
    if isinstance(config, AdaLoraConfig):
        try:
            tensors = lora_form(tensors, record.get("targets", []))
        except BundleError as exc:
            raise BundleError(f"{path}: {exc}") from None
        config = LoraConfig(**{f.name: getattr(config, f.name) for f in fields(LoraConfig)})
    return Parent(path, record, tensors, config)


def check_request(
    paths: Sequence[Path],
    out: Path,
    weights: Sequence[float] | None,
    combine: str,
    density: float | None,
    rank: int | None,
) -> None:
    """Refuse options that no bundle could make right, and an ``out`` that would clobber
    an input, before any bundle is read."""
    if len(paths) < 2:
        raise AdapterkitError(f"merge needs at least 2 bundles, got {len(paths)}")
    if combine not in COMBINES:
        raise AdapterkitError(f"unknown --combine '{combine}'; use {', '.join(COMBINES)}")
    if weights is not None and len(weights) != len(paths):
        raise AdapterkitError(
            f"--weights gives {len(weights)} number(s) for {len(paths)} bundles; give one per bundle"
        )
    bad = [w for w in weights or [] if not math.isfinite(w)]
    if bad:
        raise AdapterkitError(f"--weights must be finite numbers, got {bad[0]}")
    if density is not None and combine == "linear":
        raise AdapterkitError("--density applies to --combine ties or dare, not linear")
    if density is not None and not 0 < density <= 1:
        raise AdapterkitError(
            f"--density must be in (0, 1] (the share of entries kept), got {density}"
        )
    if rank is not None and rank < 1:
        raise AdapterkitError(f"--rank must be at least 1, got {rank}")
    check_out(paths, out)


def merged_name(name: str | None, out: Path) -> str:
    """The merged adapter's name: ``name``, or the ``out`` folder's name, checked."""
    if name is not None:
        check_adapter_name(name)
        return name
    try:
        check_adapter_name(out.resolve().name)
    except AdapterkitError as exc:
        raise AdapterkitError(f"{exc} (the --out folder's name; pass --name)") from None
    return out.resolve().name


def check_out(paths: Sequence[Path], out: Path) -> None:
    """Refuse an ``out`` that is, or holds, an input bundle (replacing it would delete that
    input), or an existing folder that is not a bundle (its files would be lost)."""
    check_not_over_inputs(out, "--out", {f"bundle {i}": p for i, p in enumerate(paths, 1)})
    target = out.resolve()
    if target.is_dir() and any(target.iterdir()) and not is_bundle_dir(target):
        raise AdapterkitError(
            f"--out {out} is a folder with files and no bundle; merge writes a new folder "
            "(or replaces a bundle): pick a new one"
        )


def check_parents(parents: Sequence[Parent], combine: str, rank: int | None) -> None:
    """Refuse bundles that do not merge: full fine-tuning, DoRA, two methods, two bases, two
    shapes; ``ties``/``dare``/``--rank`` on a method without low-rank deltas."""
    first = parents[0]
    method = first.config.method
    for place, parent in enumerate(parents, start=1):
        if parent.record.get("includes_base"):
            raise AdapterkitError(
                f"bundle {place} ({parent.path}) is a full fine-tuning bundle; merge takes "
                "adapters over one frozen base"
            )
        if parent.config.method != method:  # named as the bundles name them (adalora)
            raise AdapterkitError(
                f"bundle {place} ({parent.path}) is of method '{parent.record.get('method')}' "
                f"and bundle 1 of '{first.record.get('method')}'; only adapters of one method "
                "merge (LoRA and AdaLoRA merge together)"
            )
    if method == "composition":
        raise AdapterkitError(
            "compositions do not merge: merge their parts, or compose the merged parts"
        )
    if method == "dora":
        raise AdapterkitError(
            "DoRA adapters do not merge: each one's magnitudes are the lengths of its own "
            "direction W + ΔW, so no average of magnitudes and deltas is a merged DoRA"
        )
    if method not in LOW_RANK_METHODS and combine != "linear":
        raise AdapterkitError(
            f"--combine {combine} works on LoRA deltas; {method} adapters merge with "
            "--combine linear (a weighted average)"
        )
    if method not in LOW_RANK_METHODS and rank is not None:
        raise AdapterkitError(f"--rank applies to LoRA merges; {method} adapters keep their shape")
    for place, parent in enumerate(parents[1:], start=2):
        check_same_base(first, parent, place, "only adapters of one base merge")
        check_same_shape(first, parent, place)


def check_same_shape(first: Parent, parent: Parent, place: int) -> None:
    """Refuse a bundle whose config, adapted layers or tensor shapes differ from bundle 1's
    (for LoRA, ranks and alphas may differ: the deltas are merged dense)."""
    skip = RANK_FIELDS if first.config.method in LOW_RANK_METHODS else ()
    ours, theirs = first.config.to_dict(), parent.config.to_dict()
    for key in sorted(set(ours) | set(theirs)):
        if key not in skip and ours.get(key) != theirs.get(key):
            raise AdapterkitError(
                f"bundle {place} ({parent.path}) has {key}={theirs.get(key)!r} and bundle 1 "
                f"{key}={ours.get(key)!r}; only adapters of one shape merge"
            )
    if first.record.get("targets") != parent.record.get("targets"):
        raise AdapterkitError(
            f"bundle {place} ({parent.path}) adapts other layers than bundle 1; only adapters "
            "of one shape merge"
        )
    mine = {k: v for k, v in first.tensors.items() if k.startswith("adapter.")}
    others = {k: v for k, v in parent.tensors.items() if k.startswith("adapter.")}
    for key in sorted(set(mine) | set(others)):
        a, b = mine.get(key), others.get(key)
        if a is None or b is None or not _same_shape(key, a, b, bool(skip)):
            shown = "missing" if b is None else tuple(b.shape)
            wanted = "missing" if a is None else tuple(a.shape)
            raise AdapterkitError(
                f"bundle {place} ({parent.path}): tensor {key} is {shown}, in bundle 1 "
                f"{wanted}; only adapters of one shape merge"
            )


def _same_shape(key: str, a: torch.Tensor, b: torch.Tensor, low_rank: bool) -> bool:
    """Whether two parents' tensors merge: equal shapes, or for LoRA factors the layer's
    side (A's input width, B's output width) with any rank."""
    if not low_rank:
        return a.shape == b.shape
    side = 1 if key.endswith(".lora_A.weight") else 0
    return a.dim() == b.dim() == 2 and a.shape[side] == b.shape[side]


def check_weight_sum(
    parents: Sequence[Parent], weights: Sequence[float], averages_heads: bool
) -> None:
    """Refuse weights summing to 0 where tensors are averaged (all but LoRA deltas): such
    weights have no average."""
    if sum(weights) != 0:
        return
    if parents[0].config.method not in LOW_RANK_METHODS and any(
        k.startswith("adapter.") for k in parents[0].tensors
    ):
        raise AdapterkitError(
            f"the weights sum to 0, and {parents[0].config.method} adapters are averaged "
            "(the weights normalised to sum 1)"
        )
    if averages_heads and parents[0].record.get("head"):
        raise AdapterkitError(
            "the weights sum to 0, so the heads have no weighted average; pass --head-from N "
            "(1-based, or a bundle's path) to keep one bundle's head"
        )


def head_index(paths: Sequence[Path], head_from: str | None) -> int | None:
    """The 0-based place of the bundle ``--head-from`` names (a 1-based number or one of
    the paths), or None when it names none."""
    if head_from is None:
        return None
    if head_from.isdigit():
        if not 1 <= int(head_from) <= len(paths):
            raise AdapterkitError(
                f"--head-from {head_from}: give 1 to {len(paths)} (a bundle's place on the "
                "command line) or a bundle's path"
            )
        return int(head_from) - 1
    wanted = Path(head_from).resolve()
    for place, path in enumerate(paths):
        if path.resolve() == wanted:
            return place
    raise AdapterkitError(
        f"--head-from {head_from!r} is neither 1 to {len(paths)} nor one of the bundles merged"
    )


def head_source(parents: Sequence[Parent], head_from: str | None) -> Parent | None:
    """The parent whose head and task the merge keeps (``--head-from``), or None when every
    head (and task) is alike, so that the heads are averaged (or there are none)."""
    place = head_index([p.path for p in parents], head_from)
    if place is not None:
        return parents[place]
    first = _head_of(parents[0])
    for place, parent in enumerate(parents[1:], start=2):
        theirs = _head_of(parent)
        if theirs != first:
            # Configs are long: shown only when they are what differs.
            configs = (theirs[0], theirs[2:]) == (first[0], first[2:])
            raise AdapterkitError(
                f"bundle {place}'s head ({_describe_head(parent, configs)}) differs from "
                f"bundle 1's ({_describe_head(parents[0], configs)}); heads merge only with one "
                "type, config and label list: pass --head-from N (1-based, or a bundle's path) "
                "to keep that bundle's head and task"
            )
    return None


def _head_of(parent: Parent) -> tuple[Any, ...]:
    """What must be equal for two heads to be averaged."""
    head = parent.record.get("head") or {}
    task = parent.record.get("task") or {}
    return head.get("type"), head.get("config"), task.get("type"), task.get("labels")


def _describe_head(parent: Parent, with_config: bool) -> str:
    head_type, config, task_type, labels = _head_of(parent)
    if head_type is None:
        return f"none, task {task_type}"
    shown = ", ".join(labels[:4]) + (", ..." if len(labels) > 4 else "") if labels else "none"
    return f"{head_type}{f' {config}' if with_config else ''}, labels {shown}"

"""The parts of a composition: bundles read and checked before anything is built or written.

Shared by ``adapterkit compose`` (:mod:`.compose_bundles`) and by ``train --fuse`` /
``--stack-on`` (:mod:`adapterkit.train.compose`). Every refusal is one line naming the
bundle by its 1-based place and what differs from bundle 1: parts must be adapters (no
full fine-tuning) of a method a composition takes, of one base; parts a new adapter is
stacked on must adapt the same layers (others compose layer by layer where they are).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from adapterkit.bundle import parent_record, read_bundle, read_bundle_config
from adapterkit.errors import AdapterkitError
from adapterkit.lifecycle.same_base import check_same_base
from adapterkit.methods import AdapterConfig
from adapterkit.methods.compose.config import PART_METHODS
from adapterkit.model_bundles import check_bundle_record


@dataclass(frozen=True)
class Part:
    """One bundle a composition is made of, read and checked."""

    path: Path
    record: dict[str, Any]
    config: AdapterConfig
    tensors: dict[str, torch.Tensor]
    """Its weights (empty when only the config was read)."""

    def entry(self) -> dict[str, Any]:
        """The part as the composition's config names it: method, config, name, sha256 and
        the layers it adapts."""
        parent = self.parent()
        return {
            "method": self.config.method,
            "config": self.config.to_dict(),
            "name": parent["name"],
            "sha256": parent["sha256"],
            "targets": list(self.record.get("targets", [])),
        }

    def parent(self) -> dict[str, Any]:
        """The composition bundle's ``parents`` entry for this part."""
        return parent_record(self.path, self.record, "part")


def read_parts(
    paths: Sequence[str | Path],
    flag: str,
    minimum: int,
    with_tensors: bool = True,
    same_layers: bool = False,
) -> list[Part]:
    """Read and check the bundles at ``paths`` as parts of one composition.

    Args:
        paths: The bundle folders, in the composition's order.
        flag: How the user named them (``--fuse``), for messages.
        minimum: The fewest bundles that make sense here.
        with_tensors: Read the weights too (checksums checked); else the configs only.
        same_layers: Refuse parts adapting other layers than bundle 1 (a stack trained on
            top of them); else each layer composes the parts that adapt it.

    Raises:
        AdapterkitError: One line for a missing or broken bundle, a full fine-tuning bundle,
            a method compositions do not take, another base, or (``same_layers``) other
            adapted layers.
    """
    if len(paths) < minimum:
        raise AdapterkitError(f"{flag} needs at least {minimum} bundles, got {len(paths)}")
    parts = []
    for place, path in enumerate(paths, start=1):
        try:
            if with_tensors:
                record, tensors = read_bundle(path)
            else:
                record, tensors = read_bundle_config(path), {}
            config = check_bundle_record(record, path)
        except AdapterkitError as exc:
            raise AdapterkitError(f"{flag}: bundle {place}: {exc}") from None
        part = Part(Path(path), record, config, tensors)
        check_part(part, place, flag)
        parts.append(part)
    for place, part in enumerate(parts[1:], start=2):
        try:
            check_same_base(parts[0], part, place, "a composition's parts share one base")
        except AdapterkitError as exc:
            raise AdapterkitError(f"{flag}: {exc}") from None
        if same_layers:
            check_same_layers(parts[0], part, place, flag)
    return parts


def check_part(part: Part, place: int, flag: str) -> None:
    """Refuse a full fine-tuning bundle and a method compositions do not take."""
    if part.record.get("includes_base"):
        raise AdapterkitError(
            f"{flag}: bundle {place} ({part.path}) is a full fine-tuning bundle; compositions "
            "take adapters over one frozen base"
        )
    if part.config.method not in PART_METHODS:
        why = {"composition": "compositions do not nest: give its parts instead"}
        reason = why.get(part.config.method)
        raise AdapterkitError(
            f"{flag}: bundle {place} ({part.path}) is of method '{part.config.method}'; "
            f"compositions take {', '.join(PART_METHODS)} parts"
            + (f" ({reason})" if reason else "")
        )
    tuned = [
        f"--{k.replace('_', '-')}" for k in ("train_bias", "train_norms") if getattr(part.config, k)
    ]
    if tuned:
        raise AdapterkitError(
            f"{flag}: bundle {place} ({part.path}) was trained with {' and '.join(tuned)}; "
            "compositions combine adapter modules only, and would drop its bias and norm changes"
        )


def check_same_layers(first: Part, part: Part, place: int, flag: str) -> None:
    """Refuse a part adapting other layers than bundle 1 (a composition combines the parts'
    outputs layer by layer)."""
    ours, theirs = first.record.get("targets", []), part.record.get("targets", [])
    if ours != theirs:
        raise AdapterkitError(
            f"{flag}: bundle {place} ({part.path}) adapts {describe_layers(theirs, ours)}, "
            f"bundle 1 {describe_layers(ours, theirs)}; a composition's parts adapt the same "
            "layers"
        )


def describe_layers(mine: list[str], other: list[str]) -> str:
    """``mine`` in a few words: how many layers, and one that ``other`` lacks."""
    extra = [name for name in mine if name not in set(other)]
    return f"{len(mine)} layer(s)" + (f" (e.g. {extra[0]})" if extra else "")


def part_tensors(parts: Sequence[Part], first_place: int = 0) -> dict[str, torch.Tensor]:
    """The parts' adapter tensors under the composition's keys: part ``i``'s
    ``adapter.<layer>.<param>`` becomes ``adapter.<layer>.parts.<i>.<param>``
    (``i`` counted from ``first_place``)."""
    tensors: dict[str, torch.Tensor] = {}
    for place, part in enumerate(parts, start=first_place):
        # Layer names hold dots, so a key splits at the longest target it starts with.
        targets = sorted(part.record.get("targets", []), key=len, reverse=True)
        for key, tensor in part.tensors.items():
            if not key.startswith("adapter."):
                continue
            layer = next((t for t in targets if key.startswith(f"adapter.{t}.")), None)
            if layer is None:
                raise AdapterkitError(f"{part.path}: tensor {key} is on no layer it adapts")
            param = key[len(f"adapter.{layer}.") :]
            tensors[f"adapter.{layer}.parts.{place}.{param}"] = tensor
    return tensors

"""``adapterkit compose``: one bundle that stacks or averages trained adapters, no training.

The composition bundle holds every part's weights (so it loads, and serves in mixed
batches, as any one adapter) and names its parts in ``parents`` by name and weights
sha256. Heads are not combined: the bundle keeps one part's head and task, chosen with
``head_from`` (required when the parts have heads). Averaging heads' logits would not
make the result an ensemble of the parts either, since the average composition already
mixes the parts inside every layer; which head fits is the user's call. Every check runs
before anything is written and the bundle is written atomically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapterkit.bundle import write_bundle
from adapterkit.errors import AdapterkitError
from adapterkit.lifecycle.compose_parts import Part, part_tensors, read_parts
from adapterkit.lifecycle.merge_checks import check_out, head_index, merged_name
from adapterkit.methods.compose.config import CompositionConfig
from adapterkit.model_bundles import check_bundle_record

COMPOSE_MODES = ("average", "stack")
"""What ``compose`` writes without training (a fusion learns its attention: ``train --fuse``)."""


def compose_bundles(
    paths: Sequence[str | Path],
    out: str | Path,
    mode: str,
    head_from: str | None = None,
    name: str | None = None,
    weights: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Write a composition of the bundles at ``paths`` as a new bundle at ``out``; returns
    its record.

    Args:
        paths: The parts, in order (for ``stack``, the first one runs first).
        out: The bundle folder to write (a new one, or a bundle to replace).
        mode: ``average`` or ``stack``.
        head_from: Keep this part's head and task (a 1-based number or its path).
        name: The composition's adapter name (default: the out folder's name).
        weights: ``average``: one weight per part, normalised to sum 1 (default: equal).

    Raises:
        AdapterkitError: One line for whatever does not compose; nothing is written then.
    """
    if mode not in COMPOSE_MODES:
        hint = "; a fusion learns its attention: train one with adapterkit train --fuse A B"
        raise AdapterkitError(
            f"compose writes {' or '.join(COMPOSE_MODES)} compositions, not {mode!r}"
            + (hint if mode == "fusion" else "")
        )
    paths, out = [Path(p) for p in paths], Path(out)
    if len(paths) < 2:
        raise AdapterkitError(f"compose needs at least 2 bundles, got {len(paths)}")
    check_out(paths, out)
    name = merged_name(name, out)
    place = head_index(paths, head_from)  # a bad --head-from is refused before any read
    check_weights(weights, len(paths), mode)
    parts = read_parts(paths, "compose", minimum=2)
    keeper = head_keeper(parts, place)
    config = CompositionConfig(
        mode=mode,
        parts=[part.entry() for part in parts],
        weights=None if weights is None else [float(w) for w in weights],
    )
    tensors = part_tensors(parts)
    tensors.update({k: v for k, v in keeper.tensors.items() if k.startswith("head.")})
    record = {
        "name": name,
        "method": config.method,
        "config": config.to_dict(),
        "targets": config.union_of_targets() or parts[0].record.get("targets", []),
        "base_model": parts[0].record["base_model"],
        "head": keeper.record.get("head"),
        "task": keeper.record.get("task") or {},
        "includes_base": False,
        "parents": [part.parent() for part in parts],
    }
    check_bundle_record(record, out)  # what the bundle's readers will check
    write_bundle(out, record, tensors)
    return record


def check_weights(weights: Sequence[float] | None, count: int, mode: str) -> None:
    """Refuse ``--weights`` that no part list could take, before any bundle is read."""
    if weights is None:
        return
    if mode != "average":
        raise AdapterkitError(f"--weights apply to --mode average, not {mode}")
    if len(weights) != count:
        raise AdapterkitError(
            f"--weights gives {len(weights)} number(s) for {count} bundles; give one per bundle"
        )
    if not all(math.isfinite(w) for w in weights) or sum(weights) == 0:
        raise AdapterkitError(
            f"--weights must be finite numbers with a sum other than 0, got {list(weights)}"
        )


def head_keeper(parts: Sequence[Part], place: int | None) -> Part:
    """The part whose head and task the composition keeps: the one ``--head-from`` names;
    without it, the first when no part has a head and all tasks agree (generation)."""
    if place is not None:
        return parts[place]
    if any(part.record.get("head") for part in parts):
        raise AdapterkitError(
            "the parts have task heads and a composition keeps one: pass --head-from N "
            "(1-based, or a bundle's path) to keep that part's head and task"
        )
    tasks = {(part.record.get("task") or {}).get("type") for part in parts}
    if len(tasks) > 1:
        raise AdapterkitError(
            f"the parts are of tasks {', '.join(sorted(map(str, tasks)))}; pass --head-from N "
            "to keep one part's task"
        )
    return parts[0]

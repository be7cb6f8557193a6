"""Per-call adapter routing, carried in a context variable.

A forward of :class:`~adapterkit.model.AdaptedModel` sets a :class:`Routing` for
the duration of that call only. Wrapped layers read it with :func:`current_routing`.
Context variables are private to each thread and each asyncio task, so two callers
running forwards at the same time on the same model never see each other's choice:
there is no global "active adapter" to trample (peft #804, adapters #165).

``torch.compile`` cannot trace ``ContextVar.get`` (one graph break per wrapped layer), so
a compiled forward (:meth:`~adapterkit.model.AdaptedModel.compile`) reads its routing from
a plain holder instead, which dynamo guards on like any other Python value. The holder is
process-wide, so compiled forwards run one at a time under its lock; eager forwards never
read it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch

from adapterkit.errors import AdapterkitError


@dataclass
class Routing:
    """Which adapter each row of the current batch uses.

    Either ``single`` names one adapter (or ``None``: base only) for the whole batch,
    or ``groups`` maps adapter names to the row indices routed to them (a mixed
    batch; rows in no group run the base only).
    """

    single: str | None = None
    groups: dict[str, torch.Tensor] | None = None
    batch_size: int | None = None
    disabled: bool = False
    block_inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    """Per-call storage of tapped FFN block inputs for parallel adapters, keyed by block."""
    runs: list[tuple[str | None, int, int]] | None = None
    """``(name, start, end)`` covering the batch in order when each adapter's rows are one
    contiguous block (a packed training batch): layers then run each adapter on a slice."""
    order: tuple[str, ...] | None = None
    """Index routing (a compiled forward): the model's adapter names, which ``slots`` index."""
    slots: torch.Tensor | None = None
    """Index routing: (B,) each row's index into ``order``, -1 for the base alone. Layers
    then read no adapter name of the batch, so one compiled graph serves every mix."""

    row_slots: dict[tuple[str, ...], torch.Tensor] = field(default_factory=dict)
    """Per-call cache for mixed batches: (B,) each row's position in a tuple of adapter
    names (-1: none of them), built once per tuple instead of once per layer."""

    def slots_for(self, present: list[str], device: torch.device) -> torch.Tensor:
        """(B,) each row's index into ``present`` (-1 for rows of no adapter in it)."""
        key = tuple(present)
        slot = self.row_slots.get(key)
        if slot is None or slot.device != device:
            slot = torch.full((self.batch_size,), -1, dtype=torch.long, device=device)
            for position, name in enumerate(present):
                slot[self.groups[name].to(device)] = position
            self.row_slots[key] = slot
        return slot

    def names(self) -> set[str]:
        """The adapter names this call uses."""
        if self.disabled:
            return set()
        if self.slots is not None:
            return {self.order[i] for i in self.slots.unique().tolist() if i >= 0}
        if self.groups is not None:
            return set(self.groups)
        return {self.single} if self.single is not None else set()


_ROUTING: ContextVar[Routing | None] = ContextVar("adapterkit_routing", default=None)


class _TracedRouting:
    """The routing of the compiled forward now running (see the module docstring)."""

    def __init__(self) -> None:
        self.routing: Routing | None = None
        self.lock = threading.RLock()


_TRACED = _TracedRouting()


def current_routing() -> Routing | None:
    """The routing of the forward running in this thread/task, or ``None``."""
    if torch.compiler.is_compiling():
        return _TRACED.routing
    return _ROUTING.get()


@contextlib.contextmanager
def traced_routing(routing: Routing) -> Iterator[Routing]:
    """Make ``routing`` the one a compiled forward traces and guards on, for the enclosed
    call only; other compiled forwards wait (the holder is shared by every thread)."""
    with _TRACED.lock:
        outer = _TRACED.routing
        _TRACED.routing = routing
        try:
            yield routing
        finally:
            _TRACED.routing = outer


def make_routing(
    adapter: str | Sequence[str | None] | None, device: torch.device | None = None
) -> Routing:
    """Build a routing from one name (whole batch) or one name per row."""
    if adapter is None or isinstance(adapter, str):
        return Routing(single=adapter)
    rows = list(adapter)
    distinct = set(rows)
    if len(distinct) == 1:
        return Routing(single=rows[0], batch_size=len(rows))
    groups: dict[str, torch.Tensor] = {}
    for name in distinct:
        if name is None:
            continue
        if not isinstance(name, str):
            raise AdapterkitError(
                f"adapter names must be strings or None, got {type(name).__name__}"
            )
        index = [i for i, row_name in enumerate(rows) if row_name == name]
        groups[name] = torch.tensor(index, dtype=torch.long, device=device)
    return Routing(groups=groups, batch_size=len(rows), runs=contiguous_runs(rows))


def indexed_routing(
    routing: Routing, order: tuple[str, ...], batch: int, device: torch.device
) -> Routing:
    """``routing`` as index routing over ``order`` for a batch of ``batch`` rows, its index
    tensor on ``device`` (the inputs'), so no layer copies it."""
    slots = torch.full((batch,), -1, dtype=torch.long, device=device)
    if routing.groups is not None:
        for name, rows in routing.groups.items():
            slots[rows.to(device)] = order.index(name)
    elif routing.single is not None:
        slots.fill_(order.index(routing.single))
    return Routing(order=order, slots=slots, batch_size=batch)


def contiguous_runs(rows: list[str | None]) -> list[tuple[str | None, int, int]] | None:
    """The rows as ``(name, start, end)`` runs, or None when a name has rows in two runs."""
    runs: list[tuple[str | None, int, int]] = []
    for index, name in enumerate(rows):
        if runs and runs[-1][0] == name:
            runs[-1] = (name, runs[-1][1], index + 1)
        else:
            runs.append((name, index, index + 1))
    names = [name for name, _, _ in runs]
    return runs if len(names) == len(set(names)) else None


@contextlib.contextmanager
def use_routing(routing: Routing) -> Iterator[Routing]:
    """Make ``routing`` current for the enclosed calls in this thread/task only."""
    token = _ROUTING.set(routing)
    try:
        yield routing
    finally:
        _ROUTING.reset(token)

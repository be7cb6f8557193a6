"""Index routing inside a host: every adapter of a layer over the rows an index picks.

A compiled forward with index routing (:meth:`AdaptedModel.compile`) gives each row an
index into the model's adapter order instead of naming the adapters of the batch, so the
graph dynamo traces is the same for every mix. :class:`IndexedRows` is the part of
:class:`~adapterkit.host.AdapterHost` that runs such calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from adapterkit.methods.base import AdapterModule, BaseWeights
from adapterkit.routing import Routing


def rows_picking(slots: torch.Tensor, index: int | None, like: torch.Tensor) -> torch.Tensor:
    """A mask broadcastable to ``like`` of the rows whose slot is ``index`` (None: any
    adapter, slot >= 0)."""
    picked = slots >= 0 if index is None else slots == index
    return picked.view(-1, *([1] * (like.dim() - 1)))


class IndexedRows:
    """Mixin of :class:`~adapterkit.host.AdapterHost`: its forward under index routing."""

    adapters: nn.ModuleDict
    base_tuning: nn.ModuleDict
    base_layer: nn.Module
    reads_block: dict[str, str]

    if TYPE_CHECKING:  # what the host provides

        def holds(self, name: str) -> bool: ...
        def base_weights(self) -> BaseWeights: ...
        def _refuse_merged_rows(self) -> None: ...
        def _block_input(
            self, routing: Routing, name: str, rows: torch.Tensor | None
        ) -> torch.Tensor | None: ...
        def _run(
            self,
            module: AdapterModule,
            x: torch.Tensor,
            out: torch.Tensor,
            block_input: torch.Tensor | None,
        ) -> torch.Tensor: ...

    def _forward_indexed(
        self, routing: Routing, x: torch.Tensor, args: tuple, kwargs: dict
    ) -> torch.Tensor:
        """Every adapter of this layer over the rows whose index picks it (index routing).

        Reads only the model's adapter order and the (B,) index tensor, so a compiled graph
        is the same for every mix of adapters in a batch. Input adaptations and base
        tunings run over the whole batch and keep their own rows (element-wise, cheap)."""
        self._refuse_merged_rows()
        slots = routing.slots.to(x.device)
        own = [(index, name) for index, name in enumerate(routing.order) if self.holds(name)]
        for index, name in own:
            if name in self.adapters and self.adapters[name].adapts_input:
                adapted = self.adapters[name].adapt_input(x)
                x = torch.where(rows_picking(slots, index, x), adapted, x)
        out = self.base_layer(x, *args, **kwargs)
        result = out
        for members in self._same_kind([name for _, name in own if name in self.adapters]):
            result = self._indexed_kind(routing, slots, members, x, out, result)
        for index, name in own:
            if name in self.base_tuning:
                tuned = self.base_tuning[name](result, self.base_layer)
                result = torch.where(rows_picking(slots, index, result), tuned, result)
        return result

    def _same_kind(self, names: list[str]) -> list[list[str]]:
        """``names`` grouped by module class and tapped input: what one batched pass takes."""
        kinds: dict[tuple[type, str | None], list[str]] = {}
        for name in names:
            kind = (type(self.adapters[name]), self.reads_block.get(name))
            kinds.setdefault(kind, []).append(name)
        return list(kinds.values())

    def _indexed_kind(
        self,
        routing: Routing,
        slots: torch.Tensor,
        names: list[str],
        x: torch.Tensor,
        out: torch.Tensor,
        result: torch.Tensor,
    ) -> torch.Tensor:
        """``result`` with the rows of ``names`` (modules of one class) adapted, in one
        batched pass where the class can (else one pass per module, each keeping its rows)."""
        modules = [self.adapters[name] for name in names]
        kind = type(modules[0])
        block_input = self._block_input(routing, names[0], None)
        local = torch.full((len(routing.order) + 1,), -1, dtype=torch.long)
        for position, name in enumerate(names):
            local[routing.order.index(name)] = position  # slot -1 reads the last entry: -1
        slot = local.to(slots.device)[slots]
        base = {"base": self.base_weights()} if kind.reads_base else {}
        batched = kind.forward_rows(modules, slot, x, out, block_input, **base)
        if batched is not None:
            return torch.where(rows_picking(slot, None, out), batched, result)
        for name, module in zip(names, modules, strict=True):
            adapted = self._run(module, x, out, block_input)
            result = torch.where(
                rows_picking(slots, routing.order.index(name), out), adapted, result
            )
        return result

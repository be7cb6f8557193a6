"""The wrapper that hosts adapters around one frozen leaf layer.

An :class:`AdapterHost` replaces a leaf module (``nn.Linear`` or GPT-2's
``Conv1D``, or a normalisation layer for norm tuning) in its parent and keeps the
original inside as ``base_layer``. Its forward runs the original layer, then the
adapters that the current call's routing (see :mod:`adapterkit.routing`) selects
for each row. It holds no state about which adapter is active: that comes with
each call.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from adapterkit.errors import AdapterkitError
from adapterkit.host_indexed import IndexedRows
from adapterkit.methods.base import AdapterModule, BaseWeights
from adapterkit.routing import Routing, current_routing

LEAF_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, Conv1D)
# From this many distinct adapters in one mixed batch, a layer asks the adapters' class to
# run them in one batched pass (AdapterModule.forward_rows): below it, one small group
# of ops per adapter is as cheap.
BATCH_ROWS_FROM = 3
# When each adapter's rows form one contiguous block of at least this many rows on
# average (a packed training batch), slicing the block beats gathering weights per row.
SLICE_ROWS_FROM = 4


def layer_features(layer: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of a Linear or Conv1D layer; of an input embedding
    table (which hosts prompt tuning's soft tokens), (vocabulary, width)."""
    if isinstance(layer, nn.Linear):
        return layer.in_features, layer.out_features
    if isinstance(layer, nn.Embedding):
        return layer.num_embeddings, layer.embedding_dim
    if isinstance(layer, Conv1D):
        return layer.weight.shape[0], layer.weight.shape[1]  # Conv1D stores (in, out)
    raise AdapterkitError(f"cannot adapt a {type(layer).__name__}: only Linear and Conv1D layers")


def dequantized(layer: nn.Module) -> torch.Tensor:
    """The (out, in) float weight of a bitsandbytes 4-bit or 8-bit linear layer."""
    weight = layer.weight
    state = getattr(weight, "quant_state", None)
    if state is not None:  # Params4bit (NF4/FP4)
        from bitsandbytes.functional import dequantize_4bit

        return dequantize_4bit(weight.data, state).to(state.dtype)
    scales = getattr(weight, "SCB", None)
    if scales is not None:  # Int8Params: int8 rows with one absmax scale each
        return weight.data.float() * scales.float().unsqueeze(1) / 127.0
    raise AdapterkitError(f"cannot read the weights of a quantized {type(layer).__name__} layer")


class AdapterHost(IndexedRows, nn.Module):
    """A frozen leaf layer plus any number of named adapters on its output."""

    def __init__(self, base_layer: nn.Module) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.adapters = nn.ModuleDict()
        self.base_tuning = nn.ModuleDict()
        """Adapter name -> its learned change of this layer's bias or norm (``--train-bias``,
        ``--train-norms``), applied to the layer's own output before any adapter module."""
        self.tap_key: str | None = None
        """Set when this layer's input is the FFN block input that parallel adapters read."""
        self.reads_block: dict[str, str] = {}
        """Adapter name -> block key of the tapped input it reads (parallel adapters)."""
        self.merged: str | None = None

    def holds(self, name: str) -> bool:
        """Whether adapter ``name`` has a module or a base tuning on this layer."""
        return name in self.adapters or name in self.base_tuning

    def routed_adapters(self) -> dict[str, torch.Tensor | None]:
        """This layer's adapter modules that the current call runs, each with the indices of
        its rows (None: the whole batch). For methods that act beyond the wrapped layer and
        read their rows from its host (prefix tuning's keys and values, inside attention)."""
        routing = current_routing()
        if routing is None or routing.disabled:
            return {}
        if routing.groups is None:
            name = routing.single
            return {name: None} if name is not None and name in self.adapters else {}
        return {name: rows for name, rows in routing.groups.items() if name in self.adapters}

    def is_empty(self) -> bool:
        """Whether no adapter lives here any more (nor a tapped input that one reads)."""
        return len(self.adapters) == 0 and len(self.base_tuning) == 0 and self.tap_key is None

    @property
    def weight(self) -> torch.Tensor:
        return self.base_layer.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return getattr(self.base_layer, "bias", None)  # an embedding table has none

    def features(self) -> tuple[int, int]:
        """(in_features, out_features) of the wrapped layer."""
        return layer_features(self.base_layer)

    def base_weights(self) -> BaseWeights:
        """The frozen weight as (out, in) (a view: Conv1D stores (in, out)) and its bias; a
        quantized layer's weight comes dequantized (a copy)."""
        weight = self.base_layer.weight
        if not weight.is_floating_point():
            return BaseWeights(dequantized(self.base_layer), self.bias)
        return BaseWeights(weight.T if isinstance(self.base_layer, Conv1D) else weight, self.bias)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        routing = current_routing()
        if routing is None:  # called outside AdaptedModel: plain layer (plus any merged adapter)
            return self.base_layer(x, *args, **kwargs)
        if routing.disabled:
            self._check_merged_ok(None)
            return self.base_layer(x, *args, **kwargs)
        if self.tap_key is not None:
            routing.block_inputs[self.tap_key] = x  # (B, T, C_in), read later in this call
        if routing.slots is not None:
            return self._forward_indexed(routing, x, args, kwargs)
        if routing.groups is None:
            return self._forward_single(routing, x, args, kwargs)
        return self._forward_mixed(routing, x, args, kwargs)

    def _run(
        self,
        module: AdapterModule,
        x: torch.Tensor,
        out: torch.Tensor,
        block_input: torch.Tensor | None,
    ) -> torch.Tensor:
        extra: dict = {"owned": True} if module.owns_output else {}
        if module.reads_base:
            extra["base"] = self.base_weights()
        return module(x, out, block_input, **extra)

    def _forward_single(
        self, routing: Routing, x: torch.Tensor, args: tuple, kwargs: dict
    ) -> torch.Tensor:
        name = routing.single
        self._check_merged_ok(name)
        if name is None or name == self.merged:
            return self.base_layer(x, *args, **kwargs)
        if name not in self.adapters:
            return self._tuned(name, self.base_layer(x, *args, **kwargs))
        module = self.adapters[name]
        seen = module.adapt_input(x) if module.adapts_input else x
        out = self.base_layer(seen, *args, **kwargs)
        return self._tuned(
            name, self._run(module, seen, out, self._block_input(routing, name, None))
        )

    def _forward_mixed(
        self, routing: Routing, x: torch.Tensor, args: tuple, kwargs: dict
    ) -> torch.Tensor:
        self._refuse_merged_rows()
        # Not read while compiling: a guard on the batch size would recompile per size.
        if not torch.compiler.is_compiling() and x.shape[0] != routing.batch_size:
            raise AdapterkitError(
                f"per-row routing got {routing.batch_size} names but a layer saw batch {x.shape[0]}; "
                "this model reshapes the batch dimension, so route one adapter per call"
            )
        present = [name for name in routing.groups if name in self.adapters]
        x = self._adapt_rows(routing, present, x)
        out = self.base_layer(x, *args, **kwargs)
        return self._tuned_rows(routing, self._adapted_rows(routing, present, x, out))

    def _adapted_rows(
        self, routing: Routing, present: list[str], x: torch.Tensor, out: torch.Tensor
    ) -> torch.Tensor:
        """The frozen output ``out`` with each row's adapter module applied."""
        runs = routing.runs
        if runs is not None and out.shape[0] >= SLICE_ROWS_FROM * len(runs):
            return self._forward_runs(routing, runs, x, out)
        if len(present) >= BATCH_ROWS_FROM:
            batched = self._forward_rows(routing, present, x, out)
            if batched is not None:
                return batched
        result = out
        for name in present:
            rows = routing.groups[name].to(out.device)
            adapted = self._run(
                self.adapters[name], x[rows], out[rows], self._block_input(routing, name, rows)
            )
            result = result.index_copy(0, rows, adapted)
        return result

    def _tuned(self, name: str, out: torch.Tensor) -> torch.Tensor:
        """``out`` with adapter ``name``'s base tuning, if it has one here.

        The tuning applies to the layer's final output, after the adapter module: merging
        folds the module first and the tuning second, in the same order."""
        if name not in self.base_tuning:
            return out
        return self.base_tuning[name](out, self.base_layer)

    def _tuned_rows(self, routing: Routing, out: torch.Tensor) -> torch.Tensor:
        """``out`` with each routed adapter's base tuning applied to its own rows."""
        if not self.base_tuning:
            return out
        for name in routing.groups:
            if name in self.base_tuning:
                rows = routing.groups[name].to(out.device)
                out = out.index_copy(0, rows, self.base_tuning[name](out[rows], self.base_layer))
        return out

    def _adapt_rows(self, routing: Routing, present: list[str], x: torch.Tensor) -> torch.Tensor:
        """The layer input with each input-adapting adapter's rows replaced by its adaptation."""
        for name in present:
            module = self.adapters[name]
            if module.adapts_input:
                rows = routing.groups[name].to(x.device)
                x = x.index_copy(0, rows, module.adapt_input(x[rows]))
        return x

    def _forward_runs(
        self,
        routing: Routing,
        runs: list[tuple[str | None, int, int]],
        x: torch.Tensor,
        out: torch.Tensor,
    ) -> torch.Tensor:
        """Each adapter on its own contiguous slice of the batch, concatenated back in order."""
        pieces = []
        for name, start, end in runs:
            if name is None or name not in self.adapters:
                pieces.append(out[start:end])
                continue
            block = self._block_input(routing, name, None)
            block = None if block is None else block[start:end]
            pieces.append(self._run(self.adapters[name], x[start:end], out[start:end], block))
        return torch.cat(pieces)

    def _forward_rows(
        self, routing: Routing, present: list[str], x: torch.Tensor, out: torch.Tensor
    ) -> torch.Tensor | None:
        """All routed adapters of this layer in one batched pass, when their class can do it."""
        modules = [self.adapters[name] for name in present]
        kind = type(modules[0])
        readers = {self.reads_block.get(name) for name in present}
        if any(type(m) is not kind for m in modules) or len(readers) != 1:
            return None
        slot = routing.slots_for(present, out.device)
        block_input = self._block_input(routing, present[0], None)
        extra: dict = {"owned": True} if kind.owns_output else {}
        if kind.reads_base:
            extra["base"] = self.base_weights()
        return kind.forward_rows(modules, slot, x, out, block_input, **extra)

    def _block_input(
        self, routing: Routing, name: str, rows: torch.Tensor | None
    ) -> torch.Tensor | None:
        key = self.reads_block.get(name)
        if key is None:
            return None
        block_input = routing.block_inputs.get(key)
        if block_input is None:
            raise AdapterkitError(f"parallel adapter '{name}' found no FFN block input for '{key}'")
        return block_input if rows is None else block_input[rows]

    def _refuse_merged_rows(self) -> None:
        """Refuse per-row routing while an adapter is merged into the base weights."""
        if self.merged is not None:
            raise AdapterkitError(
                f"adapter '{self.merged}' is merged into the base weights; unmerge it before "
                "mixed batches"
            )

    def _check_merged_ok(self, requested: str | None) -> None:
        """Refuse a call that wants anything but the merged adapter (None = base only)."""
        if self.merged is not None and requested != self.merged:
            wanted = "the base alone" if requested is None else f"'{requested}'"
            raise AdapterkitError(
                f"adapter '{self.merged}' is merged into the base weights, so this layer cannot run "
                f"{wanted}; unmerge it first"
            )

    # Merging ---------------------------------------------------------------------------
    def merge(self, name: str) -> None:
        """Fold a mergeable adapter (and its base tuning) into the frozen weight and bias."""
        adapter: AdapterModule | None = self.adapters[name] if name in self.adapters else None  # noqa: SIM401 (ModuleDict has no .get)
        if adapter is not None and not adapter.mergeable:
            raise AdapterkitError(f"adapter '{name}' ({type(adapter).__name__}) cannot be merged")
        if self.merged is not None:
            raise AdapterkitError(
                f"'{self.merged}' is already merged into this layer; unmerge it first"
            )
        if not self.base_layer.weight.is_floating_point():
            raise AdapterkitError(
                f"adapter '{name}' cannot be merged into a quantized base layer; export it "
                "with `adapterkit export --format merged`, which loads the base unquantized"
            )
        if adapter is not None:
            self._write(adapter.merged_weights(self._base_double()))
        if name in self.base_tuning:  # after the module, as in the forward (see _tuned)
            try:
                self.base_tuning[name].merge_into(self.base_layer)
            except AdapterkitError:
                if adapter is not None:
                    self._write(adapter.unmerged_weights(self._base_double()))
                raise
        self.merged = name

    def unmerge(self) -> None:
        """Take the merged adapter out of the frozen weight again."""
        if self.merged is None:
            return
        if self.merged in self.base_tuning:
            self.base_tuning[self.merged].unmerge_from(self.base_layer)
        if self.merged in self.adapters:
            self._write(self.adapters[self.merged].unmerged_weights(self._base_double()))
        self.merged = None

    def _base_double(self) -> BaseWeights:
        # Merging works in float64 so that merge followed by unmerge returns the weight
        # to within 1 ulp of its dtype.
        weight, bias = self.base_weights()
        return BaseWeights(weight.double(), None if bias is None else bias.double())

    @torch.no_grad()
    def _write(self, new: BaseWeights) -> None:
        weight, bias = self.base_weights()
        weight.copy_(new.weight.to(weight.dtype))  # a view: writes Conv1D's (in, out) storage
        if bias is not None and new.bias is not None:
            bias.copy_(new.bias.to(bias.dtype))

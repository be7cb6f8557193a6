"""The attention function that prepends each row's prefix keys and values.

Every architecture prefix tuning supports calls attention through transformers'
``ALL_ATTENTION_FUNCTIONS`` with the attention module, the query, key and value as
(B, heads, T, D) (key/value heads under GQA) and a mask. :func:`check_and_install`
registers a wrapper under ``sdpa`` (and ``eager`` when a model runs eager attention) that
calls the original after three changes, and only when the call routes a prefix to a row:

- keys and values: each row's prefix, (heads, L, D), in front of its real ones; a row whose
  adapter has no prefix (or a shorter one) gets zeros there;
- the mask: L more columns in front, visible to the rows whose prefix is there and masked
  for the others, so those rows compute exactly what they would without any prefix. A
  missing mask is made explicit first (``sdpa`` then means causal when the module is and
  the query has more than one token, as transformers' own ``sdpa`` reads it);
- T5's relative position bias: L columns of zeros in front (a prefix has no position).

The KV cache is updated before the attention function runs, so it holds real tokens only
and each decoding step prepends the prefix again: generation reuses the cache unchanged.
Calls that route no prefix go to the original function untouched.

Rows are found without importing the hosts (a layer above ``methods/``): the attention
module's child layers that host adapters answer ``routed_adapters()``.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, AttentionInterface

from adapterkit.errors import AdapterkitError
from adapterkit.methods.prefix.config import projection_parts
from adapterkit.methods.prefix.layer import PARTS, PrefixAdapter

SUPPORTED = ("sdpa", "eager")
_WRAPPED: dict[str, Callable[..., Any]] = {}
"""Implementation name -> our wrapper, once registered (process-wide, as transformers'
registry is)."""


def check_and_install(model: nn.Module, targets: list[str], method: str) -> None:
    """Refuse what prefix tuning cannot reach, then register the wrapper for the attention
    implementation the model runs.

    Raises:
        AdapterkitError: A target is not a key/value projection, an attention gets a key
            prefix without a value prefix (or the reverse), or an attention does not run
            through transformers' attention interface with ``sdpa`` or ``eager``.
    """
    covered: dict[str, set[str]] = {}
    for target in targets:
        parts = projection_parts(target, 3, method)
        covered.setdefault(target.rpartition(".")[0], set()).update(parts)
    for name, parts in covered.items():
        if set(PARTS) - parts:
            raise AdapterkitError(
                f"{method}: --target-modules: attention '{name}' would get a prefix of its "
                f"{' and '.join(sorted(parts))} only; target its key and value projections both"
            )
        attention = model.get_submodule(name)
        implementation = reachable_implementation(attention, name, method)
        _install(implementation)


def reachable_implementation(attention: nn.Module, name: str, method: str) -> str:
    """The attention implementation ``attention`` runs, when the wrapper can reach it."""
    kind = type(attention).__name__
    try:
        source = inspect.getsource(type(attention).forward)
    except (OSError, TypeError):
        source = ""
    config = getattr(attention, "config", None)
    if "ALL_ATTENTION_FUNCTIONS" not in source or config is None:
        raise AdapterkitError(
            f"{method}: the attention '{name}' ({kind}) does not run through transformers' "
            "attention interface, so prefix tuning cannot reach its keys and values; "
            "choose another --method"
        )
    implementation = config._attn_implementation
    # GPT-2's eager path with reorder_and_upcast_attn computes attention itself.
    bypass = implementation == "eager" and getattr(attention, "reorder_and_upcast_attn", False)
    if implementation not in SUPPORTED or bypass:
        raise AdapterkitError(
            f"{method}: the base runs attention '{implementation}'"
            + (" with reorder_and_upcast_attn" if bypass else "")
            + f" in '{name}' ({kind}); prefix tuning reaches sdpa and eager attention only: "
            "load the base with attn_implementation='sdpa'"
        )
    if implementation == "eager":
        _eager_of(attention)  # refuse now, not at the first forward
    return implementation


def _install(implementation: str) -> None:
    if implementation in _WRAPPED:
        return
    original = ALL_ATTENTION_FUNCTIONS["sdpa"] if implementation == "sdpa" else None
    wrapper = _prefixed(implementation, original)
    _WRAPPED[implementation] = wrapper
    AttentionInterface.register(implementation, wrapper)


def _eager_of(attention: nn.Module) -> Callable[..., Any]:
    """The eager attention function ``attention`` would get: the default its class passes to
    ``get_interface`` (transformers returns it when no ``eager`` is registered; ours now is)."""
    found = _eager_default(type(attention))
    if found is None:
        raise AdapterkitError(
            f"prefix tuning: {type(attention).__name__} names no eager attention function to "
            "wrap; load the base with attn_implementation='sdpa'"
        )
    return found


@functools.cache
def _eager_default(kind: type) -> Callable[..., Any] | None:
    try:
        source = inspect.getsource(kind.forward)
    except (OSError, TypeError):
        return None
    # get_interface(self.config._attn_implementation, eager_attention_forward): the second
    # argument, a name in the modeling file (almost always eager_attention_forward).
    call = re.search(r"get_interface\(\s*[^,]+,\s*([A-Za-z_]\w*)", source)
    name = call.group(1) if call else "eager_attention_forward"
    return getattr(sys.modules.get(kind.__module__), name, None)


def _prefixed(implementation: str, original: Callable[..., Any] | None) -> Callable[..., Any]:
    def attention(
        module: nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        run = original if original is not None else _eager_of(module)
        prefixes = routed_prefixes(module)
        if not prefixes:
            return run(module, query, key, value, attention_mask, **kwargs)
        batch, q_len, kv_len = query.shape[0], query.shape[2], key.shape[2]
        keys, values, visible = per_row_prefix(prefixes, key, value)
        length = keys.shape[2]
        mask = extended_mask(
            implementation,
            module,
            attention_mask,
            visible,
            (batch, q_len, kv_len, length),
            kwargs,
            query,
        )
        bias = kwargs.get("position_bias")
        if bias is not None:  # T5: a prefix has no relative position
            kwargs["position_bias"] = torch.cat(
                [bias.new_zeros(*bias.shape[:-1], length), bias], -1
            )
        out, weights = run(
            module,
            query,
            torch.cat([keys, key], dim=2),
            torch.cat([values, value], dim=2),
            mask,
            **kwargs,
        )
        return out, None if weights is None else weights[..., length:]

    attention.__name__ = f"prefix_{implementation}_attention"
    return attention


def routed_prefixes(module: nn.Module) -> list[tuple[torch.Tensor | None, dict[str, torch.Tensor]]]:
    """Each prefix adapter the current call routes through ``module``: its rows (None: the
    whole batch) and its ``key``/``value`` tables, (L, C)."""
    tables: dict[str, dict[str, torch.Tensor]] = {}
    rows_of: dict[str, torch.Tensor | None] = {}
    for child in module.children():
        routed = getattr(child, "routed_adapters", None)
        if routed is None:
            continue
        for name, rows in routed().items():
            adapter = child.adapters[name]
            if isinstance(adapter, PrefixAdapter):
                tables.setdefault(name, {}).update(adapter.tables())
                rows_of[name] = rows
    return [(rows_of[name], parts) for name, parts in tables.items() if set(parts) == set(PARTS)]


def _as_heads(table: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(L, heads * D) -> (heads, L, D), with ``like``'s heads, dtype and device."""
    heads, dim = like.shape[1], like.shape[3]
    return table.to(like).view(table.shape[0], heads, dim).transpose(0, 1)


def per_row_prefix(
    prefixes: list[tuple[torch.Tensor | None, dict[str, torch.Tensor]]],
    key: torch.Tensor,
    value: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Prefix keys (B, heads, L, D) and values per row, L the longest routed prefix, and
    which slots each row sees, (B, L) (None: every row sees them all)."""
    batch = key.shape[0]
    if len(prefixes) == 1 and prefixes[0][0] is None:  # one adapter for the whole batch
        tables = prefixes[0][1]
        keys = _as_heads(tables["key"], key).expand(batch, -1, -1, -1)
        return keys, _as_heads(tables["value"], value).expand(batch, -1, -1, -1), None
    length = max(tables["key"].shape[0] for _, tables in prefixes)
    keys = key.new_zeros(batch, key.shape[1], length, key.shape[3])
    values = value.new_zeros(batch, value.shape[1], length, value.shape[3])
    visible = torch.zeros(batch, length, dtype=torch.bool, device=key.device)
    for rows, tables in prefixes:
        index = torch.arange(batch, device=key.device) if rows is None else rows.to(key.device)
        own = tables["key"].shape[0]
        for target, part, like in ((keys, "key", key), (values, "value", value)):
            padded = nn.functional.pad(_as_heads(tables[part], like), (0, 0, 0, length - own))
            target.index_copy_(0, index, padded.expand(len(index), -1, -1, -1))
        visible[index, :own] = True
    return keys, values, visible


def extended_mask(
    implementation: str,
    module: nn.Module,
    mask: torch.Tensor | None,
    visible: torch.Tensor | None,
    sizes: tuple[int, int, int, int],
    kwargs: dict[str, Any],
    query: torch.Tensor,
) -> torch.Tensor:
    """The mask with the prefix's L columns in front, (B or 1, heads or 1, Tq, L + Tk).

    ``sizes`` is (B, Tq, Tk, L); ``visible`` (B, L) says which prefix slots each row sees
    (None: all). Boolean (True: attend) where the original is boolean, or absent under
    ``sdpa``; else additive (0, or the dtype's lowest value), as ``eager`` adds it to the
    scores (in ``query``'s dtype).
    """
    batch, q_len, kv_len, length = sizes
    device = query.device
    if mask is None:
        causal = kwargs.get("is_causal")
        causal = getattr(module, "is_causal", True) if causal is None else causal
        if implementation == "sdpa" and causal and q_len > 1:
            # As transformers' sdpa reads it: is_causal, aligned top-left (longer keys are
            # cropped there, masked here).
            rows = torch.arange(q_len, device=device)[:, None]
            mask = (rows >= torch.arange(kv_len, device=device)[None, :]).view(1, 1, q_len, kv_len)
        else:
            mask = torch.ones(1, 1, 1, kv_len, dtype=torch.bool, device=device)
    if visible is None:
        front = torch.ones(1, 1, 1, length, dtype=torch.bool, device=device)
    else:
        front = visible.view(batch, 1, 1, length)
    if mask.dtype == torch.bool and implementation == "eager":
        mask = _additive(mask, query.dtype)
    if mask.dtype != torch.bool:
        front = _additive(front, mask.dtype)
    rows, heads, queries = max(mask.shape[0], front.shape[0]), mask.shape[1], mask.shape[2]
    return torch.cat(
        [front.expand(rows, heads, queries, length), mask.expand(rows, heads, queries, kv_len)],
        dim=-1,
    )


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask as an additive one: 0 where allowed, else the dtype's lowest value."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )

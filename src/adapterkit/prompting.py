"""Soft prompts at the input: each call's rows lengthened for prompt tuning, outputs cut back.

Prompt tuning puts ``k`` learned vectors before a row's tokens, so a call's sequence
grows, which no wrapped layer can do. :func:`prompted` does it around one forward (or
``generate``) of the base, for the rows routed to a prompt adapter:

- input: ``P`` columns (the longest routed prompt) go in front of every row. A row with
  a ``k``-token prompt has its soft tokens in the last ``k`` of them; the others are
  filler, masked out (rows with a shorter prompt, or none, in a mixed batch). The ids
  there are placeholders: the input embedding layer's host (the soft tokens live there,
  see :class:`~adapterkit.methods.prompt.PromptEmbedding`) gets a forward hook that writes
  the soft tokens over those columns' embeddings. Working on ids, not ``inputs_embeds``,
  keeps decoding with and without a KV cache the same: each step's input still starts
  with the prompt columns, or (a cached step) does not reach them.
- attention mask, token types, labels (-100) and position ids are extended so that
  every row sees exactly what it would alone: its positions count from its own first soft
  token, filler ones never enter attention. Encoder-decoders (T5) get the prompt in front
  of the encoder input only; their decoder, labels and outputs keep their length.
- outputs: every per-token output (hidden states, logits, attentions; the encoder's for
  an encoder-decoder) loses the ``P`` columns, so heads, tasks, metrics and the server see
  the user's tokens only. ``generate`` returns the user's prompt and the continuation.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.utils import ModelOutput

from adapterkit.errors import AdapterkitError
from adapterkit.host import AdapterHost
from adapterkit.methods.prompt.layer import PromptEmbedding
from adapterkit.routing import Routing

IGNORE = -100  # the label of a position no loss reads
PLACEHOLDER_ID = 0  # any id in the table: the hook overwrites soft columns, filler is masked


@dataclass
class PromptLayout:
    """Where the current call's soft tokens go."""

    width: int
    """P: prompt columns in front of every row."""
    total: int
    """P + T: the lengthened input. A base call on fewer columns is a cached decoding
    step, whose prompt is already in the cache."""
    prompts: list[tuple[PromptEmbedding, torch.Tensor | None]] = field(default_factory=list)
    """Each routed prompt and its rows (None: the whole batch)."""


_LAYOUT: ContextVar[PromptLayout | None] = ContextVar("adapterkit_prompt_layout", default=None)


def prompt_host(base: nn.Module) -> AdapterHost | None:
    """The host of the input embedding layer (the encoder's) when it holds prompt adapters.

    Found through ``get_input_embeddings``, where the prompt method puts its host: a
    lookup, not a walk over the model's modules, since every forward asks."""
    config = getattr(base, "config", None)
    reader = base.get_encoder() if getattr(config, "is_encoder_decoder", False) else base
    get = getattr(reader, "get_input_embeddings", None)
    try:
        table = get() if get is not None else None
    except NotImplementedError:  # a model class without input embeddings
        return None
    if isinstance(table, AdapterHost) and any(
        isinstance(m, PromptEmbedding) for m in table.adapters.values()
    ):
        return table
    return None


def _routed(
    host: AdapterHost, routing: Routing
) -> list[tuple[PromptEmbedding, torch.Tensor | None]]:
    if routing.disabled:
        return []
    if routing.groups is None:
        chosen = {routing.single: None} if routing.single is not None else {}
    else:
        chosen = dict(routing.groups)
    return [
        (host.adapters[name], rows)
        for name, rows in chosen.items()
        if name in host.adapters and isinstance(host.adapters[name], PromptEmbedding)
    ]


def _put_soft_tokens(host: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> Any:
    """Forward hook of the prompt host: the soft tokens over the prompt columns (B, P, C)."""
    layout = _LAYOUT.get()
    if layout is None or output.dim() != 3 or output.shape[1] < layout.total:
        return None
    output = output.clone()  # (B, L, C); the frozen lookup's result is not ours to edit
    for module, rows in layout.prompts:
        start = layout.width - module.num_virtual_tokens
        tokens = module.embedding.to(output.dtype)  # (k, C)
        if rows is None:
            output[:, start : layout.width] = tokens
        else:
            output[rows.to(output.device), start : layout.width] = tokens
    return output


def _attach(host: AdapterHost) -> None:
    if not getattr(host, "_adapterkit_prompt_hook", False):
        host.register_forward_hook(_put_soft_tokens)
        host._adapterkit_prompt_hook = True


@dataclass
class PromptedCall:
    """A base call's arguments with the prompt put in, and how to cut its outputs back."""

    kwargs: dict[str, Any]
    width: int = 0
    """P, the prompt columns added (0: no prompt routed, nothing changes)."""
    encoder_decoder: bool = False

    def outputs(self, result: Any) -> Any:
        """A forward's outputs with the prompt columns removed from per-token tensors."""
        if self.width == 0 or not isinstance(result, ModelOutput):
            return result
        for key in list(result.keys()):
            if (
                self.encoder_decoder
                and not key.startswith("encoder_")
                and key != "cross_attentions"
            ):
                continue  # the decoder's outputs have the decoder's length
            value = result[key]
            if isinstance(value, torch.Tensor):
                result[key] = self._cut(key, value)
            elif isinstance(value, tuple) and all(isinstance(v, torch.Tensor) for v in value):
                result[key] = tuple(self._cut(key, v) for v in value)
        return result

    def _cut(self, key: str, value: torch.Tensor) -> torch.Tensor:
        width, total = self.width, self.kwargs["input_ids"].shape[1]
        if key.endswith("attentions"):  # (B, H, queries, keys)
            if value.dim() == 4 and value.shape[-1] == total:
                value = value[..., width:]
            if value.dim() == 4 and value.shape[-2] == total and key != "cross_attentions":
                value = value[..., width:, :]
            return value
        # (B, L, C) hidden states, (B, L, V) logits; with logits_to_keep the model kept only
        # the last positions, which are the user's already.
        return value[:, width:] if value.dim() == 3 and value.shape[1] == total else value

    def sequences(self, result: Any) -> Any:
        """``generate``'s result (ids, or an output with ``sequences``) without the prompt
        columns: the user's prompt and the continuation, as without a prompt adapter."""
        if self.width == 0 or self.encoder_decoder:
            return result
        if isinstance(result, torch.Tensor):
            return result[:, self.width :]
        result.sequences = result.sequences[:, self.width :]
        return result


@contextlib.contextmanager
def prompted(
    base: nn.Module, routing: Routing, kwargs: dict[str, Any], generating: bool = False
) -> Iterator[PromptedCall]:
    """The base call's ``kwargs`` with the routed rows' soft prompts put in front.

    Within the block the prompt host writes the soft tokens; use the yielded call's
    ``kwargs`` for the base and its :meth:`PromptedCall.outputs` (or ``sequences`` after
    ``generate``) on the result. Rows routed to no prompt adapter, and calls with none,
    run exactly as before (no prompt routed: the kwargs are the caller's own).

    Raises:
        AdapterkitError: ``inputs_embeds`` instead of ids, or a prompt and input longer
            than the model's positions.
    """
    host = prompt_host(base)
    prompts = [] if host is None else _routed(host, routing)
    if not prompts:
        yield PromptedCall(kwargs)
        return
    assert host is not None
    _attach(host)
    call = _lengthen(base, prompts, routing, dict(kwargs), generating)
    token = _LAYOUT.set(PromptLayout(call.width, call.kwargs["input_ids"].shape[1], prompts))
    try:
        yield call
    finally:
        _LAYOUT.reset(token)


def _lengthen(
    base: nn.Module,
    prompts: list[tuple[PromptEmbedding, torch.Tensor | None]],
    routing: Routing,
    kwargs: dict[str, Any],
    generating: bool,
) -> PromptedCall:
    ids = kwargs.get("input_ids")
    if ids is None:
        raise AdapterkitError(
            "method 'prompt' needs input_ids as a keyword (its soft tokens go in front of "
            "them), not inputs_embeds nor positional arguments"
        )
    batch, length = ids.shape
    device = ids.device
    k = torch.zeros(batch, dtype=torch.long, device=device)  # each row's soft tokens
    for module, rows in prompts:
        if rows is None:
            k.fill_(module.num_virtual_tokens)
        else:
            k[rows.to(device)] = module.num_virtual_tokens
    width = max(module.num_virtual_tokens for module, _ in prompts)
    config = getattr(base, "config", None)
    encoder_decoder = bool(getattr(config, "is_encoder_decoder", False))
    offset = _position_offset(base)
    _check_length(config, width + length + (offset or 0))

    column = torch.arange(width, device=device)
    soft = column.unsqueeze(0) >= (width - k).unsqueeze(1)  # (B, P): a soft token, not filler
    mask = kwargs.get("attention_mask")
    if mask is None:
        mask = torch.ones_like(ids)
    kwargs["attention_mask"] = torch.cat([soft.to(mask.dtype), mask], dim=1)
    kwargs["input_ids"] = torch.cat([_columns(ids, width, PLACEHOLDER_ID), ids], dim=1)
    if kwargs.get("token_type_ids") is not None:
        types = kwargs["token_type_ids"]
        kwargs["token_type_ids"] = torch.cat([_columns(types, width, 0), types], dim=1)
    if not encoder_decoder:
        if kwargs.get("labels") is not None:
            labels = kwargs["labels"]
            kwargs["labels"] = torch.cat([_columns(labels, width, IGNORE), labels], dim=1)
        if kwargs.get("position_ids") is not None:
            raise AdapterkitError(
                "method 'prompt' sets position ids itself (its soft tokens take the first "
                "positions); call without position_ids"
            )
        # generate derives positions from the attention mask itself (counting only the
        # unmasked columns: the same as these), and extends them at every step.
        if not generating and _takes(base, "position_ids"):
            kwargs["position_ids"] = _positions(ids, k, soft, width, offset)
    if generating and not encoder_decoder:
        _shift_watchers(kwargs, width)
    return PromptedCall(kwargs, width, encoder_decoder)


def _columns(like: torch.Tensor, width: int, value: int) -> torch.Tensor:
    """(B, width) of ``value``, with ``like``'s dtype and device."""
    return torch.full((like.shape[0], width), value, dtype=like.dtype, device=like.device)


def _positions(
    ids: torch.Tensor, k: torch.Tensor, soft: torch.Tensor, width: int, offset: int | None
) -> torch.Tensor:
    """(B, P + T) position ids: each row counts from its first soft token, as alone.

    ``offset`` is RoBERTa's padding index: its positions start past it and its pad tokens
    sit at it (what the model computes from ids itself); None counts from 0."""
    k_col = k.unsqueeze(1)
    prefix = (torch.arange(width, device=ids.device) - (width - k_col)).clamp(min=0)  # (B, P)
    if offset is None:
        user = k_col + torch.arange(ids.shape[1], device=ids.device)  # (B, T)
        return torch.cat([prefix, user], dim=1)
    real = (ids != offset).long()
    user = torch.where(real.bool(), offset + k_col + real.cumsum(1), offset)
    prefix = torch.where(soft, offset + 1 + prefix, offset)
    return torch.cat([prefix, user], dim=1)


def _position_offset(base: nn.Module) -> int | None:
    """RoBERTa-style padding index of the position table, else None."""
    inner = getattr(base, "base_model", base)
    table = getattr(getattr(inner, "embeddings", None), "position_embeddings", None)
    index = getattr(table, "padding_idx", None)
    return int(index) if index is not None else None


def _takes(base: nn.Module, name: str) -> bool:
    return name in inspect.signature(base.forward).parameters


def _check_length(config: Any, needed: int) -> None:
    limit = None
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            limit = value
            break
    if limit is not None and needed > limit:
        raise AdapterkitError(
            f"method 'prompt': the soft tokens and the input take {needed} positions, but the "
            f"model has {limit}; lower max_length or --num-virtual-tokens"
        )


class _Shifted(StoppingCriteria):
    """A stopping criterion that sees the ids without the prompt columns."""

    def __init__(self, inner: Any, width: int) -> None:
        self.inner = inner
        self.width = width

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> Any:
        return self.inner(input_ids[:, self.width :], scores, **kwargs)


class _ShiftedStreamer:
    """A streamer whose first ``put`` (the prompt) comes without the prompt columns."""

    def __init__(self, inner: Any, width: int) -> None:
        self.inner = inner
        self.width = width
        self.first = True

    def put(self, value: torch.Tensor) -> None:
        if self.first:
            self.first = False
            value = value[..., self.width :]
        self.inner.put(value)

    def end(self) -> None:
        self.inner.end()


def _shift_watchers(kwargs: dict[str, Any], width: int) -> None:
    """Caller's stopping criteria and streamer see the ids they passed, not the prompt."""
    criteria = kwargs.get("stopping_criteria")
    if criteria:
        kwargs["stopping_criteria"] = StoppingCriteriaList([_Shifted(c, width) for c in criteria])
    if kwargs.get("streamer") is not None:
        kwargs["streamer"] = _ShiftedStreamer(kwargs["streamer"], width)

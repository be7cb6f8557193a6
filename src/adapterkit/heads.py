"""Task heads that travel inside bundles.

Heads are small modules on top of the base's last hidden states (B, T, C), so one
headless base can serve many tasks and label sets at once. Each head stores its
constructor arguments in ``head_config`` and is rebuilt with :func:`build_head`.
Causal-LM tasks need no head: they reuse the base's own LM head.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from adapterkit.bundle import MAX_LABELS
from adapterkit.checked import check_value
from adapterkit.errors import AdapterkitError
from adapterkit.routing import current_routing

_HEADS: dict[str, type[Head]] = {}
POOLINGS = ("cls", "mean", "last")
# What a head's constructor arguments may be, checked before a head is built from a
# bundle's config: a hidden size of 10**7 would otherwise ask for hundreds of TB.
ARGUMENT_RULES: dict[str, dict[str, Any]] = {
    "hidden_size": {"min": 1, "max": 2**16},
    "num_labels": {"min": 1, "max": MAX_LABELS},
    "dropout": {"min": 0, "below": 1},
    "pooling": {"choices": POOLINGS},
    "first_marker_id": {"min": 0, "max": 2**31 - 1},
}


class Head(nn.Module):
    """Base class: ``forward(hidden_states (B, T, C), attention_mask (B, T)) -> logits``."""

    head_type: ClassVar[str] = ""
    reads_routing: ClassVar[bool] = False
    """Whether the head hooks the base and reads the call's routing by adapter name there
    (entity-pair markers); a model compiled with index routing refuses such heads."""

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.head_config = dict(config)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.head_type:
            _HEADS[cls.head_type] = cls

    def set_dropout(self, rate: float) -> None:
        """Train with another dropout rate (no weights change; the bundle records it)."""
        if "dropout" not in self.head_config:
            raise AdapterkitError(f"--head-dropout: the {self.head_type} head has no dropout")
        self.head_config["dropout"] = check_value("dropout", float, rate, ARGUMENT_RULES["dropout"])
        for module in self.modules():
            if isinstance(module, nn.Dropout):
                module.p = rate

    def attach(self, base: nn.Module, heads: Callable[[], dict[str, Head]]) -> None:
        """Called when the head joins a model over ``base`` (``heads`` returns the model's
        heads by adapter name, at call time): a head that needs more than the final hidden
        states hooks the base here. Most heads need nothing."""
        return None


def build_head(head_type: str, config: dict[str, Any]) -> Head:
    """Rebuild a head from its stored type and config, each argument checked first."""
    return _HEADS[head_type](**check_head_config(head_type, config))


def check_head_config(head_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """A stored head's constructor arguments, checked before anything is allocated.

    Raises:
        AdapterkitError: Unknown type, unknown or missing arguments, or a value of the
            wrong type or out of range (one line naming it).
    """
    if head_type not in _HEADS:
        raise AdapterkitError(
            f"unknown head type '{head_type}'; known: {', '.join(sorted(_HEADS))}"
        )
    cls = _HEADS[head_type]
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self")
    unknown = sorted(set(config) - set(params))
    missing = sorted(n for n, p in params.items() if p.default is p.empty and n not in config)
    if unknown:
        raise AdapterkitError(f"{head_type} head: unknown argument(s) {', '.join(unknown)}")
    if missing:
        raise AdapterkitError(f"{head_type} head: missing argument(s) {', '.join(missing)}")
    hints = typing.get_type_hints(cls.__init__)
    return {
        name: check_value(f"head.config.{name}", hints[name], value, ARGUMENT_RULES.get(name, {}))
        for name, value in config.items()
    }


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """(B, T, C) -> (B, C) by the first token, the mask-weighted mean, or the last real token."""
    if pooling == "cls":
        return hidden[:, 0]
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], device=hidden.device, dtype=torch.long)
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    if pooling == "mean":
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    if pooling == "last":
        # Works for right and left padding: the last position whose mask is 1.
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (attention_mask.long() * positions).argmax(dim=1)  # (B,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise AdapterkitError(f"unknown pooling '{pooling}'; use {', '.join(POOLINGS)}")


class ClassificationHead(Head):
    """Pool, then dense → tanh → dropout → linear to one logit per label."""

    head_type = "classification"

    def __init__(
        self, hidden_size: int, num_labels: int, pooling: str = "mean", dropout: float = 0.1
    ) -> None:
        super().__init__(
            hidden_size=hidden_size, num_labels=num_labels, pooling=pooling, dropout=dropout
        )
        self.pooling = pooling
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def set_pooling(self, pooling: str) -> None:
        """Read the sequence another way (no weights change, so this is exact)."""
        self.pooling = check_value("pooling", str, pooling, ARGUMENT_RULES["pooling"])
        self.head_config["pooling"] = self.pooling

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        pooled = pool(hidden, attention_mask, self.pooling)  # (B, C)
        return self.out(self.dropout(torch.tanh(self.dense(self.dropout(pooled)))))  # (B, L)


class TokenClassificationHead(Head):
    """Dropout → linear on every token: (B, T, C) -> (B, T, L)."""

    head_type = "token-classification"

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__(hidden_size=hidden_size, num_labels=num_labels, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.out(self.dropout(hidden))


class SpanQAHead(Head):
    """Start and end logits per token for extractive QA: (B, T, C) -> (B, T, 2)."""

    head_type = "span-qa"

    def __init__(self, hidden_size: int) -> None:
        super().__init__(hidden_size=hidden_size)
        self.out = nn.Linear(hidden_size, 2)

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.out(hidden)


class EntityPairHead(Head):
    """Relation classification from the two entity-start markers (Baldini Soares et al. 2019).

    **Markers.** The task marks the head entity ``<e1> ... </e1>`` and the tail
    ``<e2> ... </e2>``, each marker one token id past the tokenizer's vocabulary
    (``first_marker_id`` + 0..3). The base's embedding matrix stays as it is (frozen, and
    matching its fingerprint): ``markers`` (4, C) holds the four rows, trained with this
    head and saved in its bundle, and :func:`attach_marker_rows` puts them in at the
    input embeddings for the rows routed to this head's adapter.

    **Classifier.** ``linear([h_head; h_tail])`` (2C -> L) over the final hidden states at
    the two start markers. A linear map of a concatenation is the sum of two maps,
    ``W [a; b] = W_1 a + W_2 b``, so this head projects *every* token to
    ``[W_1 h; W_2 h]`` (B, T, 2L) and the task adds the two halves at the two positions
    (:func:`pair_logits`). The head's call stays the same as every other head's: the
    positions travel in the task's batch, and nothing between the base and the task
    (server, packed training) needs to know about them. ``W_1`` and ``W_2`` are two
    tensors with one row per label, so a head widened to new labels (``train
    --init-from``) keeps its old rows in front, as the other heads do.
    """

    head_type = "entity-pair"
    reads_routing = True
    marker_count: ClassVar[int] = 4

    def __init__(
        self, hidden_size: int, num_labels: int, first_marker_id: int, dropout: float = 0.1
    ) -> None:
        super().__init__(
            hidden_size=hidden_size,
            num_labels=num_labels,
            first_marker_id=first_marker_id,
            dropout=dropout,
        )
        self.first_marker_id = first_marker_id
        # BERT's embedding init scale; the rows learn from there.
        self.markers = nn.Parameter(torch.randn(self.marker_count, hidden_size) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.head_out = nn.Linear(hidden_size, num_labels)  # W_1 and the bias
        self.tail_out = nn.Linear(hidden_size, num_labels, bias=False)  # W_2

    def attach(self, base: nn.Module, heads: Callable[[], dict[str, Head]]) -> None:
        """The marker rows enter at the base's input embeddings."""
        attach_marker_rows(base, heads)

    def forward(
        self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        hidden = self.dropout(hidden)
        return torch.cat([self.head_out(hidden), self.tail_out(hidden)], dim=-1)  # (B, T, 2L)


def pair_logits(token_logits: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """(B, T, 2L) per-token halves of :class:`EntityPairHead` and (B, 2) head/tail start
    positions -> (B, L) relation logits: the head half at the head, plus the tail half at
    the tail. One row: (T, 2L) and (2,) -> (L,)."""
    labels = token_logits.shape[-1] // 2
    if token_logits.dim() == 2:
        return token_logits[starts[0], :labels] + token_logits[starts[1], labels:]
    rows = torch.arange(token_logits.shape[0], device=token_logits.device)
    return token_logits[rows, starts[:, 0], :labels] + token_logits[rows, starts[:, 1], labels:]


# Marker rows at the input embeddings ------------------------------------------------------
_MARKER_IDS = "entity-pair marker ids"  # where a call's original ids wait for the output hook


def attach_marker_rows(base: nn.Module, heads: Callable[[], dict[str, Head]]) -> None:
    """Hook the base's input embeddings so that :class:`EntityPairHead` markers work.

    Before the lookup, ids past the frozen table become id 0, so it is never indexed out
    of range; after it, the rows routed to each adapter whose head has markers get that
    head's ``markers`` where they hold its marker ids. Per-row routing decides which rows
    are whose, so one batch may mix adapters (the server, packed training), and a head
    changes no other adapter's rows. Attaching twice is a no-op.

    Args:
        base: The transformers model (``get_input_embeddings()`` is hooked).
        heads: Returns the model's heads by adapter name, at call time.
    """
    embeddings = base.get_input_embeddings()
    # The table itself, also when a host wraps it (prompt tuning's soft tokens live there).
    embeddings = getattr(embeddings, "base_layer", embeddings)
    if getattr(embeddings, "_adapterkit_marker_rows", False):
        return
    embeddings._adapterkit_marker_rows = True

    def marker_heads() -> dict[str, EntityPairHead]:
        return {n: h for n, h in heads().items() if isinstance(h, EntityPairHead)}

    def take_ids(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        ids = args[0]  # (B, T)
        routing = current_routing()
        if routing is not None:
            routing.block_inputs[_MARKER_IDS] = ids
        # Only ids past the table change here, so a head cannot touch another adapter's
        # rows (its markers go in below, for its own rows only). No `.any()` test: it
        # would make every forward wait for the device.
        return (ids.masked_fill(ids >= module.num_embeddings, 0), *args[1:])

    def put_rows(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> Any:
        routing = current_routing()
        ids = routing.block_inputs.pop(_MARKER_IDS, None) if routing is not None else None
        if ids is None or routing is None or routing.disabled:
            return None
        found = marker_heads()
        names = routing.names() & set(found)
        if not names:
            return None
        output = output.clone()  # (B, T, C); the frozen lookup's result is not ours to edit
        for name in names:
            rows = None if routing.groups is None else routing.groups[name]
            _put_markers(output, ids, rows, found[name])
        return output

    embeddings.register_forward_pre_hook(take_ids)
    embeddings.register_forward_hook(put_rows)


def _put_markers(
    output: torch.Tensor, ids: torch.Tensor, rows: torch.Tensor | None, head: EntityPairHead
) -> None:
    """Write ``head``'s marker rows into ``output`` (B, T, C) where ``rows`` (all when None)
    hold its marker ids."""
    if rows is None:
        rows = torch.arange(ids.shape[0], device=ids.device)
    offset = ids[rows] - head.first_marker_id  # (b, T)
    hit = (offset >= 0) & (offset < head.marker_count)
    r, t = hit.nonzero(as_tuple=True)
    if len(r):
        output[rows[r], t] = head.markers[offset[r, t]].to(output.dtype)

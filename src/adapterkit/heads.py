"""Task heads that travel inside bundles.

Heads are small modules on top of the base's last hidden states (B, T, C), so one
headless base can serve many tasks and label sets at once. Each head stores its
constructor arguments in ``head_config`` and is rebuilt with :func:`build_head`.
Causal-LM tasks need no head: they reuse the base's own LM head.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any, ClassVar

import torch
from torch import nn

from adapterkit.bundle import MAX_LABELS
from adapterkit.checked import check_value
from adapterkit.errors import AdapterkitError

_HEADS: dict[str, type[Head]] = {}
POOLINGS = ("cls", "mean", "last")
# What a head's constructor arguments may be, checked before a head is built from a
# bundle's config: a hidden size of 10**7 would otherwise ask for hundreds of TB.
ARGUMENT_RULES: dict[str, dict[str, Any]] = {
    "hidden_size": {"min": 1, "max": 2**16},
    "num_labels": {"min": 1, "max": MAX_LABELS},
    "dropout": {"min": 0, "below": 1},
    "pooling": {"choices": POOLINGS},
}


class Head(nn.Module):
    """Base class: ``forward(hidden_states (B, T, C), attention_mask (B, T)) -> logits``."""

    head_type: ClassVar[str] = ""

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.head_config = dict(config)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.head_type:
            _HEADS[cls.head_type] = cls


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
    """Relation classification from the two entity-start tokens (Baldini Soares et al. 2019).

    The classifier is ``linear([h_head; h_tail])`` (2C -> L) over the hidden states at
    the head's and the tail's start markers. A linear map of a concatenation is the sum
    of two maps, ``W [a; b] = W_1 a + W_2 b``, so this head projects *every* token to
    ``[W_1 h; W_2 h]`` (B, T, 2L) and the task adds the two halves at the two positions
    (:func:`pair_logits`). That keeps the head's call the same as every other head's:
    the positions travel in the task's batch, and nothing between the base and the task
    (server, packed training) needs to know about them. ``W_1`` and ``W_2`` are two
    tensors with one row per label, so a head widened to new labels (``train
    --init-from``) keeps its old rows in front, as the other heads do.
    """

    head_type = "entity-pair"

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1) -> None:
        super().__init__(hidden_size=hidden_size, num_labels=num_labels, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.head_out = nn.Linear(hidden_size, num_labels)  # W_1 and the bias
        self.tail_out = nn.Linear(hidden_size, num_labels, bias=False)  # W_2

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

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

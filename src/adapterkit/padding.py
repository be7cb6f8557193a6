"""Dynamic padding: lists of token ids of different lengths -> one (B, T) tensor.

Every batch in adapterkit is padded here: task collation (right), the server's
mixed-task batches (right) and generation prompts (left, so that every row continues
from the last position).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def pad_token_id(tokenizer: Any) -> int:
    """The id padding uses: the pad token, else end-of-sequence (decoders), else 0.

    Padded positions are masked out of attention and loss, so any id works; these are
    the ones a reader of the batch expects.
    """
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return int(value)
    return 0


def pad_rows(
    rows: Sequence[Sequence[int]],
    value: int,
    *,
    left: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Pad integer lists to the longest one: a (B, T_max) long tensor.

    Args:
        rows: One list of ints per row (token ids, labels, masks ...).
        value: The filler (pad id, ignore index, 0 for masks).
        left: Pad before the values instead of after them.
        device: Where the tensor is created.
    """
    width = max((len(row) for row in rows), default=0)
    padded = [
        [value] * (width - len(row)) + list(row)
        if left
        else list(row) + [value] * (width - len(row))
        for row in rows
    ]
    return torch.tensor(padded, dtype=torch.long, device=device).reshape(len(rows), width)


def mask_rows(
    rows: Sequence[Sequence[int]],
    *,
    left: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The (B, T_max) attention mask of ``rows`` padded with :func:`pad_rows`: 1 on values."""
    return pad_rows([[1] * len(row) for row in rows], 0, left=left, device=device)

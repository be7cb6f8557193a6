"""Activation checkpointing that keeps each call's adapter routing.

Checkpointing stores only each transformer block's inputs and recomputes the block in
the backward pass: far less activation memory for one more forward pass of compute.
transformers runs that recompute inside ``backward()``, after :class:`AdaptedModel`'s
forward has returned and reset its routing ContextVar, so a plain recompute would run
the blocks without their adapters (and torch's checkpoint would then refuse the
mismatched saved tensors). Here each block runs inside a copy of the context it was
first called in, so the recompute sees the same routing.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import torch.utils.checkpoint
from torch import nn

from adapterkit.errors import AdapterkitError


def routing_checkpoint(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``torch.utils.checkpoint`` (non-reentrant) with the caller's contextvars kept."""
    context = contextvars.copy_context()
    return torch.utils.checkpoint.checkpoint(
        context.run, function, *args, use_reentrant=False, **kwargs
    )


def enable_activation_checkpointing(base: nn.Module) -> None:
    """Checkpoint every transformer block of a transformers model (adapted or not)."""
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise AdapterkitError(
            f"{type(base).__name__} does not support activation checkpointing; "
            "train without --activation-checkpointing"
        )
    # The public activation_checkpointing_enable() always uses torch's own checkpoint;
    # this private hook is where transformers takes a custom function (the tests would
    # catch it moving).
    base._set_gradient_checkpointing(enable=True, gradient_checkpointing_func=routing_checkpoint)

"""One ``generate`` call for many prompts: left padding, decoding arguments, cutting rows.

Shared by the command line and evaluation (:mod:`adapterkit.generation.decode`) and
the server (:mod:`adapterkit.serve.generation`), which imports it from here: the
server sits above generation, never the other way round.

Rows of one call are left-padded (decoders continue from the last position, so every
prompt must end there) and share the decode steps whatever their adapters. A row's
own ``max_new_tokens`` and stop strings are applied afterwards by cutting: under
greedy decoding a row's tokens do not depend on how long the others run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from adapterkit.model import AdaptedModel
from adapterkit.padding import mask_rows, pad_rows
from adapterkit.tasks.base import not_finite


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters; rows share one ``generate`` call only when these are equal."""

    temperature: float = 0.0
    top_p: float = 1.0

    @property
    def greedy(self) -> bool:
        """Temperature 0 means greedy decoding (argmax), as in OpenAI's API."""
        return self.temperature == 0.0


@dataclass
class GenerateRequest:
    """One prompt to continue, with its adapter and how to decode and cut it."""

    adapter: str | None
    prompt_ids: list[int]
    max_new_tokens: int
    sampling: Sampling = Sampling()
    stop: tuple[str, ...] = ()


@dataclass
class Generation:
    """A finished continuation."""

    text: str
    finish_reason: str
    """``stop`` (end-of-sequence token or a stop string) or ``length``."""
    prompt_tokens: int
    completion_tokens: int


def eos_ids(model: AdaptedModel, tokenizer: Any) -> set[int]:
    """Every id that ends a sequence for this base."""
    found: set[int] = set()
    config = getattr(model.base, "generation_config", None)
    for value in (getattr(config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, list | tuple):
            found.update(int(v) for v in value)
    return found


def generate_kwargs(sampling: Sampling, max_new_tokens: int, pad_id: int) -> dict[str, Any]:
    """Arguments for ``generate``: greedy at temperature 0, else nucleus sampling."""
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": pad_id}
    if sampling.greedy:
        return {**kwargs, "do_sample": False}
    # top_k=0 switches off the model's default top-k so top_p alone trims, as OpenAI does.
    return {
        **kwargs,
        "do_sample": True,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "top_k": 0,
    }


class FiniteScores(LogitsProcessor):
    """Refuses a decoding step whose next-token scores hold NaN or +inf (the error of
    :func:`~adapterkit.tasks.base.not_finite`, naming the row's adapter): an adapter whose
    weights overflow would otherwise decode token 0 greedily, as if it had answered, or
    crash sampling. -inf is left alone: the processors before this one mask tokens with it.
    """

    def __init__(self, adapters: list[str | None]) -> None:
        self.adapters = adapters  # one name per row; None: the base alone

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        bad = torch.isnan(scores).any(-1) | torch.isposinf(scores).any(-1)  # (B,)
        if bool(bad.any()):  # one sync a step; transformers' stopping checks sync as often
            raise not_finite(self.adapters[int(bad.nonzero()[0])] or "(the base alone)")
        return scores


def finite_scores(adapters: list[str | None]) -> LogitsProcessorList:
    """``generate``'s ``logits_processor``: :class:`FiniteScores` for rows of ``adapters``."""
    return LogitsProcessorList([FiniteScores(adapters)])


def left_pad(prompts: list[list[int]], pad_id: int, device: torch.device) -> dict[str, Any]:
    """(B, T) ``input_ids`` and ``attention_mask``, padded on the left."""
    return {
        "input_ids": pad_rows(prompts, pad_id, left=True, device=device),
        "attention_mask": mask_rows(prompts, left=True, device=device),
    }


def finish(
    tokenizer: Any, request: GenerateRequest, new_ids: list[int], eos: set[int]
) -> Generation:
    """Cut one row's new tokens at its own length, end-of-sequence and stop strings."""
    tokens = new_ids[: request.max_new_tokens]
    reason = "length"
    for position, token in enumerate(tokens):
        if token in eos:
            tokens, reason = tokens[:position], "stop"
            break
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    cuts = [text.find(stop) for stop in request.stop if stop and stop in text]
    if cuts:
        text, reason = text[: min(cuts)], "stop"
    return Generation(text, reason, len(request.prompt_ids), len(tokens))

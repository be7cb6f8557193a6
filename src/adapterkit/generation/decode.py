"""Batched text generation with an adapter: greedy or nucleus sampling, stop strings, streaming.

The batch mechanics are :mod:`adapterkit.generation.batch`'s (the server uses them
too): prompts are left-padded so that every row continues from the last position, and
each row is cut at its end-of-sequence token and stop strings. This module adds what
the command line and evaluation need on top: batching a long list by length (with a
progress bar), encoder-decoder bases, stop strings that also end decoding early, and
printing one prompt's tokens as they come.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

from adapterkit.checked import check_fields
from adapterkit.errors import AdapterkitError, DataError
from adapterkit.generation.batch import (
    GenerateRequest,
    Generation,
    Sampling,
    eos_ids,
    finish,
    finite_scores,
    generate_kwargs,
    left_pad,
)
from adapterkit.model import AdaptedModel
from adapterkit.models import max_positions
from adapterkit.padding import pad_token_id


@dataclass
class DecodeOptions:
    """How to decode."""

    max_new_tokens: int = field(default=128, metadata={"min": 1})
    """Most tokens generated per prompt."""
    temperature: float = field(default=0.0, metadata={"min": 0})
    """0 is greedy decoding (argmax); above 0 samples from the softened distribution."""
    top_p: float = field(default=1.0, metadata={"above": 0, "max": 1})
    """Nucleus sampling: keep the smallest token set whose probability reaches top_p."""
    stop: tuple[str, ...] = ()
    """Text that ends a generation (not included in the output)."""
    batch_size: int = field(default=16, metadata={"min": 1})
    """Prompts per ``generate`` call."""
    seed: int = field(default=0, metadata={"min": 0, "max": 2**32 - 1})
    """Seed of the sampler (sampling only)."""

    def __post_init__(self) -> None:
        check_fields(self)
        self.stop = tuple(s for s in self.stop if s)

    @property
    def sampling(self) -> Sampling:
        """The sampling record of a ``generate`` call (greedy at temperature 0)."""
        return Sampling(self.temperature, self.top_p)


class StopStreamer(TextStreamer):
    """Prints the new text as tokens arrive, holding back what may start a stop string."""

    def __init__(self, tokenizer: Any, stop: tuple[str, ...] = (), out: TextIO | None = None):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.stop = [s for s in stop if s]
        self.out = out or sys.stdout
        self.pending = ""
        self.done = False

    def _emit(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if self.done:
            return
        self.pending += text
        cuts = [self.pending.find(s) for s in self.stop if s in self.pending]
        if cuts:
            self._emit(self.pending[: min(cuts)] + "\n")
            self.pending, self.done = "", True
            return
        # Keep back the longest tail that is the beginning of some stop string.
        hold = max(
            (k for s in self.stop for k in range(1, len(s)) if self.pending.endswith(s[:k])),
            default=0,
        )
        if stream_end:
            self._emit(self.pending + "\n")
            self.pending = ""
            return
        self._emit(self.pending[: len(self.pending) - hold])
        self.pending = self.pending[len(self.pending) - hold :]


class StopOnText(StoppingCriteria):
    """Ends each row once its decoded continuation contains a stop string.

    Decoding the text, rather than transformers' ``stop_strings`` (which precomputes
    token tables from the vocabulary and fails on some tokenizers), works with any
    tokenizer; decoding a few hundred tokens per step costs little next to a forward.
    """

    def __init__(self, tokenizer: Any, stop: tuple[str, ...], prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.width = prompt_width

    def __call__(
        self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.width :], skip_special_tokens=True)
        done = [any(stop in text for stop in self.stop) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def context_room(model: AdaptedModel, prompt_width: int) -> int | None:
    """How many new tokens fit in the base's positions after a prompt ``prompt_width``
    tokens wide (None: the base states no limit). An encoder-decoder writes its answer in
    a context of its own, after its start token.

    Raises:
        DataError: The prompt leaves no room at all (one line).
    """
    limit = max_positions(model.base.config)
    if limit is None:
        return None
    encoder_decoder = bool(getattr(model.base.config, "is_encoder_decoder", False))
    room = limit - 1 if encoder_decoder else limit - prompt_width
    if room < 1:
        raise DataError(
            f"a prompt of {prompt_width} tokens fills the base's context of {limit} positions: "
            "no room to generate; shorten it (or lower --max-length)"
        )
    return room


@torch.no_grad()
def generate_texts(
    model: AdaptedModel,
    tokenizer: Any,
    prompts: list[list[int]],
    adapter: str | None = None,
    options: DecodeOptions | None = None,
    streamer: TextStreamer | None = None,
) -> list[Generation]:
    """Continue every prompt (token ids) with ``adapter`` (None: the base alone).

    Prompts are sorted by length so each batch pads little, then put back in order. A
    batch generates at most the new tokens that fit in the base's context after its
    longest prompt (:func:`context_room`): past it, learned positions run out (an index
    error) and rotary ones give text the model never saw the like of.
    A row that produces a stop string stops decoding there (:class:`StopOnText`). A
    list longer than one batch shows a progress bar on stderr (decoding a test split
    can take minutes).

    Returns:
        One :class:`~adapterkit.generation.batch.Generation` per prompt: text (stop string and
        end-of-sequence removed), finish reason, prompt and completion token counts.
    """
    options = options or DecodeOptions()
    if streamer is not None and len(prompts) != 1:
        raise AdapterkitError("streaming prints one generation; give one prompt")
    model.eval()
    device = next(model.parameters()).device
    pad, eos = pad_token_id(tokenizer), eos_ids(model, tokenizer)
    encoder_decoder = bool(getattr(model.base.config, "is_encoder_decoder", False))
    torch.manual_seed(options.seed)
    kwargs = generate_kwargs(options.sampling, options.max_new_tokens, pad)
    if streamer is not None:
        kwargs["streamer"] = streamer
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[Generation | None] = [None] * len(prompts)
    starts = range(0, len(order), options.batch_size)
    for start in tqdm(starts, desc="generate", unit="batch", leave=False, disable=len(starts) <= 1):
        chunk = order[start : start + options.batch_size]
        batch = left_pad([prompts[i] for i in chunk], pad, device)
        # A decoder returns prompt + continuation; an encoder-decoder returns the decoder
        # sequence, which starts with its start token.
        skip = 1 if encoder_decoder else batch["input_ids"].shape[1]
        if options.stop:
            stop = StopOnText(tokenizer, options.stop, 0 if encoder_decoder else skip)
            kwargs["stopping_criteria"] = StoppingCriteriaList([stop])
        kwargs["logits_processor"] = finite_scores([adapter] * len(chunk))
        room = context_room(model, batch["input_ids"].shape[1])
        new = options.max_new_tokens if room is None else min(options.max_new_tokens, room)
        kwargs["max_new_tokens"] = new
        output = model.generate(**batch, adapter=adapter, **kwargs)
        for row, i in enumerate(chunk):
            request = GenerateRequest(adapter, prompts[i], new, options.sampling, options.stop)
            results[i] = finish(tokenizer, request, output[row, skip:].tolist(), eos)
    return [r for r in results if r is not None]

"""Prompts in, continuations out: encoding on the event loop, decoding on the worker.

The batch mechanics (left padding, ``generate`` arguments, cutting each row at its
own length and stop strings) are :mod:`adapterkit.generation.batch`'s; this module
adds the server's side: chat prompts, encoding on the event loop, and one
``generate`` call for the jobs of a batch.
"""

from __future__ import annotations

from typing import Any

from adapterkit.generation.batch import (
    Generation,
    eos_ids,
    finish,
    finite_scores,
    generate_kwargs,
    left_pad,
)
from adapterkit.model import AdaptedModel
from adapterkit.padding import pad_token_id
from adapterkit.serve.jobs import GenerateJob


def chat_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, bool]:
    """Messages → prompt text with the tokenizer's chat template when it has one.

    Returns:
        ``(text, has_specials)``: whether the text already holds the special tokens
        (a template writes its own BOS; adding another would change the prompt).
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return str(text), True
    # No template: a plain transcript that ends where the assistant speaks.
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join([*lines, "assistant:"]), False


def encode_prompt(tokenizer: Any, text: str, has_specials: bool = False) -> list[int]:
    """Token ids of one prompt (runs on the event loop, the tokenizer's only thread)."""
    return list(tokenizer(text, add_special_tokens=not has_specials)["input_ids"])


def generate_rows(
    model: AdaptedModel,
    tokenizer: Any,
    jobs: list[GenerateJob],
    adapters: list[str | None] | None,
) -> list[Generation]:
    """One ``generate`` call for jobs that share sampling parameters.

    Args:
        model: The adapted base.
        tokenizer: The worker thread's tokenizer (decoding).
        jobs: Prompts to continue, all with the same :class:`Sampling`.
        adapters: One name (None: base) per row, passed to ``generate`` (batched
            path); ``None`` passes nothing, so the model's active adapter runs (the
            naive path).
    """
    pad_id = pad_token_id(tokenizer)
    device = next(model.parameters()).device
    batch = left_pad([job.prompt_ids for job in jobs], pad_id, device)
    kwargs = generate_kwargs(jobs[0].sampling, max(job.max_new_tokens for job in jobs), pad_id)
    if adapters is not None:
        kwargs["adapter"] = adapters
    kwargs["logits_processor"] = finite_scores([job.adapter for job in jobs])
    output = model.generate(**batch, **kwargs)
    # A decoder returns prompt + continuation, (B, T + new); an encoder-decoder returns the
    # decoder sequence, which starts with its start token.
    encoder_decoder = bool(getattr(model.base.config, "is_encoder_decoder", False))
    skip = 1 if encoder_decoder else batch["input_ids"].shape[1]
    eos = eos_ids(model, tokenizer)
    return [
        finish(tokenizer, job, output[row, skip:].tolist(), eos) for row, job in enumerate(jobs)
    ]

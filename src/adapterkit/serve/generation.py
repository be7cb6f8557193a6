"""Prompts in, continuations out: encoding on the event loop, decoding on the worker.

Rows of one ``generate`` call are left-padded (decoders continue from the last
position, so every prompt must end there) and share the decode steps whatever
their adapters. A row's own ``max_new_tokens`` is applied afterwards by cutting:
under greedy decoding a row's tokens do not depend on how long the others run.
"""

from __future__ import annotations

from typing import Any

import torch

from adapterkit.model import AdaptedModel
from adapterkit.serve.jobs import GenerateJob, Generation, Sampling


def pad_token_id(tokenizer: Any) -> int:
    """The id padding uses: the pad token, else end-of-sequence, else 0."""
    for value in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if value is not None:
            return int(value)
    return 0


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


def left_pad(prompts: list[list[int]], pad_id: int, device: torch.device) -> dict[str, Any]:
    """(B, T) ``input_ids`` and ``attention_mask``, padded on the left."""
    width = max(len(p) for p in prompts)
    ids = [[pad_id] * (width - len(p)) + p for p in prompts]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long, device=device),
        "attention_mask": torch.tensor(mask, dtype=torch.long, device=device),
    }


def finish(tokenizer: Any, job: GenerateJob, new_ids: list[int], eos: set[int]) -> Generation:
    """Cut one row's new tokens at its own length, end-of-sequence and stop strings."""
    tokens = new_ids[: job.max_new_tokens]
    reason = "length"
    for position, token in enumerate(tokens):
        if token in eos:
            tokens, reason = tokens[:position], "stop"
            break
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    cuts = [text.find(stop) for stop in job.stop if stop and stop in text]
    if cuts:
        text, reason = text[: min(cuts)], "stop"
    return Generation(text, reason, len(job.prompt_ids), len(tokens))


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
    output = model.generate(**batch, **kwargs)  # (B, T + new)
    width = batch["input_ids"].shape[1]
    eos = eos_ids(model, tokenizer)
    return [
        finish(tokenizer, job, output[row, width:].tolist(), eos) for row, job in enumerate(jobs)
    ]

"""The OpenAI-compatible routes clients call: models, completions and chat completions.

``model`` names an adapter, or the base (its name, ``base`` or null). ``stream: true``
answers as server-sent events in OpenAI's chunk format, ending in ``data: [DONE]``; the
continuation is generated in the shared batches first, so each choice arrives as one
chunk (no token-by-token streaming). Options this server does not implement are refused
by the request schemas, never ignored.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from adapterkit.generation.batch import Generation, Sampling
from adapterkit.serve import schemas
from adapterkit.serve.jobs import GenerateJob
from adapterkit.serve.registry import AdapterRegistry
from adapterkit.serve.settings import ServeError, ServeSettings

BASE_NAMES = ("base",)
DEFAULT_NEW_TOKENS = 64
"""New tokens of a chat completion, and of /v1/generate, when the request names none (fewer
when the base's context has less room left)."""
MakeJob = Callable[[str | None, str, bool, int | None, Sampling, list[str]], GenerateJob]
"""(adapter, prompt, prompt holds special tokens, new tokens or None: the default, sampling,
stop strings) -> a checked, encoded job."""
ChatText = Callable[[list[dict[str, str]]], tuple[str, bool]]


def usage(results: list[Generation]) -> dict[str, int]:
    """OpenAI's token counts over ``results``."""
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(r.completion_tokens for r in results)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def add_openai_routes(
    app: FastAPI,
    settings: ServeSettings,
    registry: AdapterRegistry,
    submit: Callable[[GenerateJob], Any],
    make_job: MakeJob,
    chat_text: ChatText,
) -> None:
    """Register ``/v1/models``, ``/v1/completions`` and ``/v1/chat/completions`` on ``app``.

    ``submit`` queues a job and returns its awaitable result; ``make_job`` checks and
    encodes one prompt; ``chat_text`` turns messages into a prompt.
    """
    started = int(time.time())

    def adapter_of(model: str | None) -> str | None:
        adapter = None if model is None or model in (*BASE_NAMES, settings.model) else model
        registry.for_generate(adapter)  # 404 unknown, 400 a head adapter or an encoder base
        return adapter

    @app.get("/v1/models", response_model=schemas.ModelList)
    async def list_models() -> dict:
        base = {"id": settings.model, "created": started, "root": settings.model, "parent": None}
        adapters = [
            {"id": e.name, "created": started, "root": settings.model, "parent": settings.model}
            for e in list(registry.entries.values())
            if e.generative
        ]
        return {"data": [base, *adapters]}

    @app.post("/v1/completions", response_model=schemas.CompletionResponse)
    async def completions(body: schemas.CompletionRequest) -> Any:
        adapter = adapter_of(body.model)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not prompts:
            raise ServeError(422, "'prompt' is an empty list")
        if len(prompts) > settings.max_inputs:
            raise ServeError(
                413, f"{len(prompts)} prompts; the limit is {settings.max_inputs} (--max-inputs)"
            )
        sampling = Sampling(body.temperature, body.top_p)
        stop = _stops(body.stop)
        jobs = [make_job(adapter, p, False, body.max_tokens, sampling, stop) for p in prompts]
        results = await asyncio.gather(*(submit(job) for job in jobs))
        head = _head("cmpl", "text_completion", body.model or settings.model)
        choices = [
            {"text": r.text, "index": i, "logprobs": None, "finish_reason": r.finish_reason}
            for i, r in enumerate(results)
        ]
        if body.stream:
            return _events([{**head, "choices": [choice]} for choice in choices])
        return {**head, "choices": choices, "usage": usage(results)}

    @app.post("/v1/chat/completions", response_model=schemas.ChatCompletionResponse)
    async def chat_completions(body: schemas.ChatCompletionRequest) -> Any:
        adapter = adapter_of(body.model)
        text, has_specials = chat_text([m.model_dump() for m in body.messages])
        new_tokens = body.max_completion_tokens or body.max_tokens  # None: make_job's default
        sampling = Sampling(body.temperature, body.top_p)
        job = make_job(adapter, text, has_specials, new_tokens, sampling, _stops(body.stop))
        result: Generation = await submit(job)
        head = _head("chatcmpl", "chat.completion", body.model or settings.model)
        if body.stream:
            chunk = {**head, "object": "chat.completion.chunk"}
            return _events(
                [
                    {
                        **chunk,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"role": "assistant", "content": result.text},
                                "finish_reason": None,
                            }
                        ],
                    },
                    {
                        **chunk,
                        "choices": [
                            {"index": 0, "delta": {}, "finish_reason": result.finish_reason}
                        ],
                    },
                ]
            )
        message = {"role": "assistant", "content": result.text}
        choice = {"index": 0, "message": message, "finish_reason": result.finish_reason}
        return {**head, "choices": [choice], "usage": usage([result])}


def _stops(stop: str | list[str] | None) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop or [])


def _head(prefix: str, kind: str, model: str) -> dict[str, Any]:
    return {
        "id": f"{prefix}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
    }


def _events(chunks: list[dict[str, Any]]) -> StreamingResponse:
    """Server-sent events: one ``data:`` line per chunk, then ``data: [DONE]``."""

    async def lines() -> AsyncIterator[str]:
        for chunk in chunks:
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream")

"""The FastAPI app: routes check requests, queue jobs, and shape answers.

Handlers are ``async`` and run on the event loop: they validate, tokenise (the
tokenizer's only thread) and await the runner; the model itself is touched only
by the single worker thread. Every refusal is a :class:`ServeError` with its HTTP
status, answered as ``{"detail": "..."}``; nothing a client sends can stop the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from adapterkit.errors import AdapterkitError, BundleError
from adapterkit.generation.batch import Generation, Sampling
from adapterkit.models import max_positions
from adapterkit.precision import resolve_precision
from adapterkit.serve import schemas
from adapterkit.serve.batcher import Batcher, NaiveRunner
from adapterkit.serve.body_limit import BodyLimit
from adapterkit.serve.compute import run_batch, run_naive
from adapterkit.serve.generation import chat_prompt, encode_prompt
from adapterkit.serve.jobs import GenerateJob, Job, PredictJob
from adapterkit.serve.openai_api import DEFAULT_NEW_TOKENS, add_openai_routes, usage
from adapterkit.serve.refusal import refusal
from adapterkit.serve.registry import AdapterRegistry
from adapterkit.serve.settings import ServeError, ServeSettings

log = logging.getLogger("adapterkit.serve")


def char_count(raw: Any) -> int:
    """Characters of text in one input, however it is shaped (string, list, object)."""
    if isinstance(raw, str):
        return len(raw)
    if isinstance(raw, dict):
        return sum(char_count(v) for v in raw.values())
    if isinstance(raw, list):
        return sum(char_count(v) for v in raw)
    return 0


def create_app(settings: ServeSettings, registry: AdapterRegistry | None = None) -> FastAPI:
    """Build the app around a registry (opened from ``settings`` when not given)."""
    registry = registry or AdapterRegistry.open(settings)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adapterkit-model")
    if settings.naive:
        runner: Batcher | NaiveRunner = NaiveRunner(
            lambda job: run_naive(registry, job, settings.max_batch), executor
        )
    else:
        runner = Batcher(
            lambda jobs: run_batch(registry, jobs, settings.max_batch),
            executor,
            settings.max_batch,
            settings.max_wait_ms,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runner.start()
        yield
        await runner.stop()
        executor.shutdown(wait=True)

    app = FastAPI(
        title="adapterkit",
        summary="One frozen base, many adapters, mixed-adapter batches.",
        lifespan=lifespan,
    )
    app.state.registry, app.state.runner = registry, runner
    app.add_middleware(BodyLimit, limit=settings.body_limit)

    async def in_worker(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    async def submit(job: Job) -> Any:
        # An adapter that cannot answer (its scores are not finite numbers) is the
        # request's 422, not the server's 500.
        try:
            return await runner.submit(job)
        except BundleError as exc:
            raise ServeError(422, str(exc)) from None

    @app.exception_handler(ServeError)
    async def _refused(request: Request, exc: ServeError) -> JSONResponse:
        return refusal(exc.detail, exc.status)

    @app.exception_handler(RequestValidationError)
    async def _malformed(request: Request, exc: RequestValidationError) -> JSONResponse:
        # One line naming each bad field, without echoing the input back: FastAPI's own
        # answer does, and an input such as 1e400 (inf) cannot be written as JSON.
        problems = [
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()[:5]
        ]
        return refusal("; ".join(problems), 422)

    @app.middleware("http")
    async def _contained(request: Request, call_next: Any) -> Any:
        # A middleware rather than an exception handler for Exception: Starlette re-raises
        # after such a handler answers, and the server then drops the keep-alive connection.
        try:
            return await call_next(request)
        except Exception as exc:
            log.exception("request to %s failed", request.url.path)
            return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, 500)

    @app.get("/health", response_model=schemas.Health)
    async def health() -> dict:
        stats = runner.stats
        return {
            "model": settings.model,
            "kind": settings.kind,
            "mode": "naive" if settings.naive else "batched",
            "compiled": settings.compile,
            "precision": resolve_precision(settings.precision, registry.device),
            "adapters": len(registry.entries),
            **vars(stats),
        }

    @app.get("/v1/adapters", response_model=schemas.AdapterList)
    async def list_adapters() -> dict:
        return {"adapters": [entry.describe() for entry in list(registry.entries.values())]}

    @app.post("/v1/adapters", response_model=schemas.AdapterInfo, status_code=201)
    async def load_adapter(body: schemas.LoadAdapter) -> dict:
        entry = await in_worker(registry.load, body.name)  # 404 absent, 409 other base
        log.info("loaded adapter %s", entry.name)
        return entry.describe()

    @app.delete("/v1/adapters/{name}", response_model=schemas.Deleted)
    async def delete_adapter(name: str) -> dict:
        await in_worker(registry.unload, name)
        log.info("deleted adapter %s", name)
        return {"deleted": name}

    @app.post("/v1/predict", response_model=schemas.PredictResponse)
    async def predict(body: schemas.PredictRequest) -> dict:
        entry = registry.for_predict(body.adapter)
        if len(body.inputs) > settings.max_inputs:
            raise ServeError(
                413, f"{len(body.inputs)} inputs; the limit is {settings.max_inputs} (--max-inputs)"
            )
        task = entry.task
        assert task is not None  # for_predict guarantees a task
        examples, features = [], []
        for number, raw in enumerate(body.inputs):
            size = char_count(raw)
            if size > settings.max_chars:
                raise ServeError(
                    413,
                    f"input {number} has {size} characters; the limit is {settings.max_chars} (--max-chars)",
                )
            try:
                example = task.parse_input(raw)
                windows = task.encode_windows(example)  # a long QA context: several rows
                examples.extend([example] * len(windows))
                features.extend(windows)
            except AdapterkitError as exc:
                raise ServeError(422, f"input {number}: {exc}") from None
        job = PredictJob(adapter=entry.name, task=task, examples=examples, features=features)
        return {"adapter": entry.name, "predictions": await submit(job)}

    def generation_job(
        adapter: str | None,
        text: str,
        has_specials: bool,
        max_new_tokens: int | None,
        sampling: Sampling,
        stop: list[str],
    ) -> GenerateJob:
        """One checked, encoded prompt. ``max_new_tokens`` None: the default (64, or less
        when the server's limit or the room left in the base's context is smaller)."""
        if max_new_tokens is not None and max_new_tokens > settings.max_new_tokens:
            raise ServeError(
                413,
                f"{max_new_tokens} new tokens asked; the limit is {settings.max_new_tokens} (--max-new-tokens)",
            )
        if len(text) > settings.max_chars:
            raise ServeError(
                413,
                f"the prompt has {len(text)} characters; the limit is {settings.max_chars} (--max-chars)",
            )
        ids = encode_prompt(registry.tokenizer, text, has_specials)
        if not ids:
            raise ServeError(400, "the prompt is empty after tokenisation")
        limit = max_positions(registry.model.base.config)
        # An encoder-decoder reads the prompt and writes the answer in two contexts.
        used = 0 if registry.kind == "seq2seq" else len(ids)
        if max_new_tokens is None:
            room = settings.max_new_tokens if limit is None else limit - used
            max_new_tokens = max(1, min(DEFAULT_NEW_TOKENS, settings.max_new_tokens, room))
        if limit is not None and max(len(ids), used + max_new_tokens) > limit:
            raise ServeError(
                400,
                f"prompt ({len(ids)} tokens) + {max_new_tokens} new tokens exceed the base's "
                f"context of {limit} tokens",
            )
        return GenerateJob(adapter, ids, max_new_tokens, sampling, tuple(stop))

    def chat_text(messages: list[dict[str, str]]) -> tuple[str, bool]:
        if sum(len(m["content"]) for m in messages) > settings.max_chars:
            raise ServeError(
                413, f"the messages exceed {settings.max_chars} characters (--max-chars)"
            )
        return chat_prompt(registry.tokenizer, messages)

    @app.post("/v1/generate", response_model=schemas.GenerateResponse)
    async def generate(body: schemas.GenerateRequest) -> dict:
        registry.for_generate(body.adapter)
        if body.messages is not None:
            text, has_specials = chat_text([m.model_dump() for m in body.messages])
        else:
            text, has_specials = body.prompt or "", False
        sampling = Sampling(body.temperature, body.top_p)
        job = generation_job(
            body.adapter, text, has_specials, body.max_new_tokens, sampling, body.stop
        )
        result: Generation = await submit(job)
        return {
            "adapter": body.adapter,
            "text": result.text,
            "finish_reason": result.finish_reason,
            "usage": usage([result]),
        }

    add_openai_routes(app, settings, registry, submit, generation_job, chat_text)
    return app

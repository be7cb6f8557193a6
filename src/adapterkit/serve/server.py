"""Run the app under uvicorn: what ``adapterkit serve`` calls."""

from __future__ import annotations

import logging
import os

from adapterkit.errors import AdapterkitError
from adapterkit.serve.settings import ServeSettings

THREADS_ENV = "ADAPTERKIT_THREADS"
log = logging.getLogger("adapterkit.serve")


def torch_threads(settings: ServeSettings) -> int | None:
    """The thread count asked for by ``--threads`` or ``$ADAPTERKIT_THREADS`` (None: torch's)."""
    if settings.threads is not None:
        return settings.threads
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise AdapterkitError(f"${THREADS_ENV} must be a positive integer, not '{value}'")
    return int(value)


def serve(settings: ServeSettings) -> int:
    """Load the base and the bundles, then serve until interrupted; returns the exit code."""
    import torch
    import uvicorn

    from adapterkit.serve.app import create_app
    from adapterkit.serve.registry import AdapterRegistry

    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    threads = torch_threads(settings)
    if threads is not None:
        torch.set_num_threads(threads)
    registry = AdapterRegistry.open(settings)
    app = create_app(settings, registry)
    mode = "naive (one request at a time)" if settings.naive else "batched"
    log.info(
        "serving %s (%s, %s, device %s) on http://%s:%d  (API docs: /docs)",
        settings.model,
        settings.kind,
        mode,
        registry.device,
        settings.host,
        settings.port,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=settings.access_log,
    )
    return 0

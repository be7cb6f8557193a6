"""HTTP serving: one frozen base, many adapter bundles, batches that mix adapters.

``adapterkit serve --model M --adapters DIR`` runs :func:`serve`. The pieces, one job
each: :mod:`~adapterkit.serve.registry` (which bundles are loaded, and checks on
names), :mod:`~adapterkit.serve.compute` (the model work, always on one worker
thread), :mod:`~adapterkit.serve.batcher` (collects requests into mixed-adapter
batches, or the naive one-at-a-time path), :mod:`~adapterkit.serve.app` (routes).
"""

from __future__ import annotations

from adapterkit.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "serve"]


def __getattr__(name: str):
    # FastAPI, torch and transformers load only when a server is actually built.
    if name == "create_app":
        from adapterkit.serve.app import create_app

        return create_app
    if name == "serve":
        from adapterkit.serve.server import serve

        return serve
    raise AttributeError(name)

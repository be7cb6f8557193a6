"""A limit on the size of a request body, checked before any handler reads it.

The per-field limits (``--max-inputs``, ``--max-chars``) are checked after FastAPI has read
and parsed the whole body; without a limit on the body itself, one request of a few
gigabytes would be held in memory first. A body that says its length (``Content-Length``)
is refused from the header alone; one sent in chunks is read up to the limit, then
refused, or handed on whole.
"""

from __future__ import annotations

from typing import Any

from adapterkit.serve.refusal import refusal

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyLimit:
    """ASGI middleware: HTTP requests whose body exceeds ``limit`` bytes get a 413."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                await self._refuse(scope, receive, send, length.decode("latin-1"))
                return
            await self.app(scope, receive, send)  # the server holds the body to its length
            return
        messages, size = [], 0
        while True:  # chunked: read it all, up to the limit, before the app sees any
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send, f"over {self.limit}")
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, scope: Scope, receive: Any, send: Any, size: str) -> None:
        detail = f"the request body has {size} bytes; the limit is {self.limit} (--max-body-bytes)"
        await refusal(detail, 413)(scope, receive, send)

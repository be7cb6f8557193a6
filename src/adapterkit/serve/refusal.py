"""How the server says no: one JSON shape for every refused request."""

from __future__ import annotations

from fastapi.responses import JSONResponse


def refusal(detail: str, status: int) -> JSONResponse:
    """A refusal: ``detail`` as FastAPI answers, and the same under ``error`` as OpenAI's
    API does, so that OpenAI clients show the reason instead of a bare status code."""
    error = {"message": detail, "type": "invalid_request_error", "code": status}
    return JSONResponse({"detail": detail, "error": error}, status_code=status)

"""Server settings (what ``adapterkit serve`` flags set) and the HTTP error type."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapterkit.errors import AdapterkitError

KINDS = ("encoder", "causal-lm")


@dataclass
class ServeSettings:
    """How one server runs. Field names match the CLI flags."""

    model: str
    """Base model: built-in alias, local directory or hub id."""
    adapters: Path
    """Folder whose subfolders are bundles; all that fit the base load at start."""
    kind: str = "encoder"
    """``encoder`` (AutoModel, task heads) or ``causal-lm`` (AutoModelForCausalLM, generation)."""
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 32
    """Most rows (inputs or prompts) one model call takes."""
    max_wait_ms: float = 5.0
    """How long the first request of a batch waits for company before the batch runs."""
    max_inputs: int = 64
    """Most inputs in one /v1/predict request (more: 413)."""
    max_chars: int = 10_000
    """Most characters in one input or prompt (more: 413)."""
    max_new_tokens: int = 512
    """Largest ``max_new_tokens`` / ``max_tokens`` a generation request may ask for."""
    naive: bool = False
    """Baseline mode: one request at a time, swapping the active adapter (for benchmarks)."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1`` ..."""
    threads: int | None = None
    """torch intra-op threads (default: ``$ADAPTERKIT_THREADS`` or torch's own choice)."""
    access_log: bool = False
    """Log every request (uvicorn's access log); off by default, it is noise under load."""

    def __post_init__(self) -> None:
        self.adapters = Path(self.adapters)
        if self.kind not in KINDS:
            raise AdapterkitError(f"unknown --kind '{self.kind}'; use {' or '.join(KINDS)}")
        for flag in ("max_batch", "max_inputs", "max_chars", "max_new_tokens"):
            if getattr(self, flag) < 1:
                raise AdapterkitError(f"--{flag.replace('_', '-')} must be at least 1")
        if self.max_wait_ms < 0:
            raise AdapterkitError("--max-wait-ms must not be negative")
        if not self.adapters.is_dir():
            raise AdapterkitError(f"{self.adapters}: adapters folder not found")


class ServeError(Exception):
    """A request that cannot be served, with the HTTP status that says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

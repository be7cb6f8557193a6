"""Server settings (what ``adapterkit serve`` flags set) and the HTTP error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from adapterkit.checked import check_fields
from adapterkit.errors import AdapterkitError
from adapterkit.models import QUANTIZE_CHOICES
from adapterkit.precision import PRECISIONS

KINDS = ("encoder", "causal-lm", "seq2seq")
GENERATIVE_KINDS = ("causal-lm", "seq2seq")


@dataclass
class ServeSettings:
    """How one server runs. Field names match the CLI flags."""

    model: str
    """Base model: built-in alias, local directory or hub id."""
    adapters: Path
    """Folder whose subfolders are bundles; all that fit the base load at start."""
    kind: str = field(default="encoder", metadata={"choices": KINDS})
    """``encoder`` (AutoModel, task heads; a T5-style checkpoint's encoder stack), ``causal-lm``
    (AutoModelForCausalLM, generation) or ``seq2seq`` (AutoModelForSeq2SeqLM, generation)."""
    host: str = "127.0.0.1"
    port: int = field(default=8000, metadata={"min": 0, "max": 65535})
    """TCP port (0: any free one)."""
    max_batch: int = field(default=32, metadata={"min": 1})
    """Most rows (inputs or prompts) one model call takes."""
    max_wait_ms: float = field(default=5.0, metadata={"min": 0})
    """How long the first request of a batch waits for company before the batch runs."""
    max_inputs: int = field(default=64, metadata={"min": 1})
    """Most inputs in one /v1/predict request (more: 413)."""
    max_chars: int = field(default=10_000, metadata={"min": 1})
    """Most characters in one input or prompt (more: 413)."""
    max_new_tokens: int = field(default=512, metadata={"min": 1})
    """Largest ``max_new_tokens`` / ``max_tokens`` a generation request may ask for."""
    max_body_bytes: int | None = field(default=None, metadata={"min": 1})
    """Largest request body (more: 413, refused before it is read whole). None: room for
    ``max_inputs`` inputs of ``max_chars`` characters, each written as JSON escapes of
    six bytes, plus 64 KiB."""
    naive: bool = False
    """Baseline mode: one request at a time, swapping the active adapter (for benchmarks)."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1`` ..."""
    threads: int | None = field(default=None, metadata={"min": 1})
    """torch intra-op threads (default: ``$ADAPTERKIT_THREADS`` or torch's own choice)."""
    access_log: bool = False
    """Log every request (uvicorn's access log); off by default, it is noise under load."""
    compile: bool = False
    """``torch.compile`` the base with index routing (:meth:`AdaptedModel.compile`): one
    graph serves every mix of adapters; the first batches of each shape class compile.
    Bundles that cannot be routed by index (prefix, prompt, entity-pair heads) are skipped.
    Generation stays eager. docs/compiled.md measures it."""
    precision: str = field(default="auto", metadata={"choices": PRECISIONS})
    """What the task-head forwards compute in: ``auto`` is bf16 autocast on a CPU with
    native bf16 or a GPU that supports it, else fp32 (:func:`adapterkit.precision.resolve_precision`;
    docs/bf16_inference.md measures the agreement and the speed). In a low precision an
    encoder base's frozen linear layers are stored in it at start (``store_base_low``).
    Generation runs fp32."""
    quantize: str | None = field(default=None, metadata={"choices": QUANTIZE_CHOICES})
    """Load the base quantized by bitsandbytes (4bit, 8bit); only bundles trained on the base
    quantized the same way load."""

    def __post_init__(self) -> None:
        check_fields(self, as_flags=True)
        if not self.adapters.is_dir():
            raise AdapterkitError(f"{self.adapters}: adapters folder not found")

    @property
    def body_limit(self) -> int:
        """The request-body limit in bytes (``max_body_bytes`` or its default)."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return 6 * self.max_inputs * self.max_chars + 65_536


class ServeError(Exception):
    """A request that cannot be served, with the HTTP status that says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

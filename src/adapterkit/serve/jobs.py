"""What travels from a request handler to the model worker, and back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from adapterkit.tasks import Task


@dataclass
class PredictJob:
    """One /v1/predict request: inputs already parsed and tokenised by the adapter's task.

    One row per feature: an input whose QA context needs several windows has several
    rows (its example repeated beside each window), merged back into one answer.
    """

    adapter: str
    task: Task
    examples: list[dict[str, Any]]
    features: list[dict[str, Any]]
    future: asyncio.Future | None = field(default=None, repr=False)
    arrived: float = 0.0

    @property
    def rows(self) -> int:
        """Rows this job adds to a batch."""
        return len(self.features)


@dataclass(frozen=True)
class Sampling:
    """Decoding parameters; rows share one ``generate`` call only when these are equal."""

    temperature: float = 0.0
    top_p: float = 1.0

    @property
    def greedy(self) -> bool:
        """Temperature 0 means greedy decoding (argmax), as in OpenAI's API."""
        return self.temperature == 0.0


@dataclass
class GenerateJob:
    """One prompt to continue (a completions request with several prompts makes several)."""

    adapter: str | None
    prompt_ids: list[int]
    max_new_tokens: int
    sampling: Sampling = Sampling()
    stop: tuple[str, ...] = ()
    future: asyncio.Future | None = field(default=None, repr=False)
    arrived: float = 0.0

    @property
    def rows(self) -> int:
        """Rows this job adds to a batch."""
        return 1


@dataclass
class Generation:
    """A finished continuation."""

    text: str
    finish_reason: str
    """``stop`` (end-of-sequence token or a stop string) or ``length``."""
    prompt_tokens: int
    completion_tokens: int


Job = PredictJob | GenerateJob

"""What travels from a request handler to the model worker, and back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from adapterkit.generation.batch import GenerateRequest
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


@dataclass
class GenerateJob(GenerateRequest):
    """One prompt to continue (a completions request with several prompts makes several)."""

    future: asyncio.Future | None = field(default=None, repr=False)
    arrived: float = 0.0

    @property
    def rows(self) -> int:
        """Rows this job adds to a batch."""
        return 1


Job = PredictJob | GenerateJob

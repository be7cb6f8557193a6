"""The method a run trains when the user names none, chosen per task type on validation.

``python -m benchmarks.default_method`` (docs/default_method.md) ranks the methods on the
validation splits of the built-in sets of each task type at full size (3 or more seeds) and
on their small seeded subsamples (3 seeds each), and picks the best mean rank; a method
stuck at the trivial predictor on any run is out. Task types no study covers keep
:data:`FALLBACK_METHOD`, the default before per-type defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from adapterkit.train.options import DEFAULT_METHOD, JobSpec

FALLBACK_METHOD = DEFAULT_METHOD
DEFAULT_METHODS: dict[str, str] = {
    "sequence-classification": "lora",
    "token-classification": "unipelt",
}
"""Task type -> the method docs/default_method.md chose for it."""


def default_method(task_type: str) -> str:
    """The method trained for ``task_type`` when none is named."""
    return DEFAULT_METHODS.get(task_type, FALLBACK_METHOD)


def with_default_method(spec: JobSpec, task_type: str, log: Callable[[str], None]) -> JobSpec:
    """``spec`` with its method filled in from ``task_type`` when it names none, said in
    ``log``; unchanged when the user chose the method."""
    if spec.options.method is not None:
        return spec
    method = default_method(task_type)
    log(f"method: {method}, the default for {task_type} (docs/default_method.md); --method chooses")
    return replace(spec, options=replace(spec.options, method=method))

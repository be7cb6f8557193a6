"""Turning metric values into plain JSON (the report writers' one shared helper)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays, paths and tuples into plain JSON values.

    Non-finite floats (NaN, inf: e.g. the perplexity of a diverged run) become
    ``None`` because ``NaN``/``Infinity`` are not valid JSON and break strict parsers.

    Args:
        value: Any nesting of dicts, sequences, numbers and strings.

    Returns:
        The same structure built only from dict, list, str, int, float, bool and None.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [to_jsonable(v) for v in value]
    raise TypeError(f"cannot write a value of type {type(value).__name__} to JSON: {value!r}")

"""Small helpers shared by the report and plot writers."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so readers see either the old file or the new one.

    The temp file lives in the target folder because ``os.replace`` is only atomic
    within one file system; a crash mid-write leaves at most a stray ``.tmp`` file,
    never a truncated ``metrics.json`` that a later comparison would trust.

    Args:
        path: Destination file; its parent folders are created.
        data: The complete file contents.

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates the file 0600; reports are meant to be read by others too.
        os.chmod(tmp_name, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        # Leave no half-written temp file behind on any failure, Ctrl-C included.
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


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

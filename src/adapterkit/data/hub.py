"""Data sets from the Hugging Face hub through the ``datasets`` library.

``datasets`` is imported only here, only when a user names a hub id (it takes a
second or two to import); adapterkit is offline by design, so a failed fetch is a
one-line error, never a traceback.
"""

from __future__ import annotations

from typing import Any

from adapterkit.data.records import Record
from adapterkit.errors import DataError

SPLIT_NAMES = {
    "train": "train",
    "validation": "validation",
    "valid": "validation",
    "dev": "validation",
    "val": "validation",
    "test": "test",
}


def _class_names(feature: Any) -> tuple[list[str] | None, bool]:
    """Names of a ClassLabel feature (or a sequence of them), and whether it is a sequence."""
    names = getattr(feature, "names", None)
    if isinstance(names, list):
        return names, False
    inner = getattr(feature, "feature", None)  # datasets.Sequence(ClassLabel(...))
    if inner is None and isinstance(feature, list) and feature:
        inner = feature[0]  # datasets>=3 writes List(ClassLabel) as [ClassLabel]
    inner_names = getattr(inner, "names", None)
    if isinstance(inner_names, list):
        return inner_names, True
    return None, False


def _named(row: dict[str, Any], decoders: dict[str, tuple[list[str], bool]]) -> dict[str, Any]:
    """Replace ClassLabel ids by their names, so labels are strings like in files."""
    out = dict(row)
    for col, (names, is_seq) in decoders.items():
        value = out.get(col)
        if is_seq and isinstance(value, list):
            out[col] = [
                names[v] if isinstance(v, int) and 0 <= v < len(names) else v for v in value
            ]
        elif isinstance(value, int) and 0 <= value < len(names):
            out[col] = names[value]
    return out


def _unlabelled(rows: Any, decoders: dict[str, tuple[list[str], bool]]) -> bool:
    """True when every ClassLabel value is -1: GLUE-style test splits without labels."""
    cols = [col for col, (_, is_seq) in decoders.items() if not is_seq]
    if not cols or len(rows) == 0:
        return False
    return all(row.get(col) == -1 for row in rows for col in cols)


def hub_records(name: str, not_found: str) -> tuple[dict[str, list[Record]], list[str]]:
    """Load a hub data set and return its rows as records per split.

    Args:
        name: Hub id, e.g. ``"imdb"`` or ``"org/name"``.
        not_found: Message start used when the id cannot be loaded.

    Returns:
        Split name (``train``/``validation``/``test``) -> ``(where, row)`` pairs,
        and notes (splits left out because they carry no labels).

    Raises:
        DataError: If the id cannot be loaded, or it
            has no train split.
    """
    import datasets  # deferred: slow to import, and only hub ids need it

    try:
        loaded = datasets.load_dataset(name)
    except Exception as exc:  # any failure of a hub fetch is the user's input or network
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DataError(f"{not_found} (as a hub id it failed: {why})") from None
    out: dict[str, list[Record]] = {}
    notes: list[str] = []
    for split, rows in loaded.items():
        ours = SPLIT_NAMES.get(str(split).lower())
        if ours is None or ours in out:
            continue
        features = getattr(rows, "features", None) or {}
        decoders = {}
        for col, feature in features.items():
            names, is_seq = _class_names(feature)
            if names is not None:
                decoders[col] = (names, is_seq)
        if _unlabelled(rows, decoders):
            notes.append(f"hub {name}: left out split {split!r}: it has no labels (all -1)")
            continue
        out[ours] = [
            (f"{name}[{split}] row {i}", _named(row, decoders)) for i, row in enumerate(rows)
        ]
    if "train" not in out:
        raise DataError(f"hub data set {name!r} has no train split; splits: {', '.join(loaded)}")
    return out, notes

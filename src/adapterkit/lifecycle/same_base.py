"""The check every bundle-from-bundles command makes first: all inputs share one base."""

from __future__ import annotations

from typing import Any, Protocol

from adapterkit.errors import AdapterkitError
from adapterkit.fingerprint import describe


class ReadBundle(Protocol):
    """A bundle already read: its path and checked record."""

    path: Any
    record: dict[str, Any]


def check_same_base(first: ReadBundle, other: ReadBundle, place: int, why: str) -> None:
    """Refuse bundle ``place`` when it was made for another base (fingerprint or
    quantization) than bundle 1, naming both bases and ``why`` they must agree."""
    ours, theirs = first.record["base_model"], other.record["base_model"]
    keys = ("structure", "weights")
    same = all(ours["fingerprint"].get(k) == theirs["fingerprint"].get(k) for k in keys)
    if not same or ours.get("quantize") != theirs.get("quantize"):
        raise AdapterkitError(
            f"bundle {place} ({other.path}) was made for base {_base(theirs)}, bundle 1 for "
            f"{_base(ours)}; {why}"
        )


def _base(base: dict[str, Any]) -> str:
    quantized = f" quantized {base['quantize']}" if base.get("quantize") else ""
    return describe(base["fingerprint"], base["name_or_path"]) + quantized

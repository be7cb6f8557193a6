"""Files that are written whole or not at all, hashed, locked between processes, and the
YAML files users hand in, read with one-line errors.

Every save in adapterkit (bundles, checkpoints, reports, downloaded wheels, extracted
and converted models) goes through :func:`staged_file` or :func:`staged_dir`: the new
content is written under a temporary name in the target's own folder (``os.replace``
is atomic only within one file system) and renamed into place once complete. A crash
or Ctrl-C at any point leaves the previous version, never a half-written one under the
final name; the temporary copy is removed on the way out.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from adapterkit.errors import AdapterkitError


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file's bytes, read in chunks (a wheel can be 100 MB)."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@contextlib.contextmanager
def file_lock(lock_path: str | Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` so concurrent processes take turns.

    The lock file is created when missing and left in place (removing it could let two
    processes hold "the" lock on two different files).
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def staged_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it is renamed to ``path``.

    Whatever the block writes at the yielded path replaces ``path`` in one step. On an
    exception (Ctrl-C included) the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_copies(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old file or the new one.

    Returns:
        ``path``.
    """
    path = Path(path)
    with staged_file(path) as tmp:
        # mkstemp creates the file 0600; reports and bundles are meant to be read by others.
        os.chmod(tmp, 0o644)
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return path


@contextlib.contextmanager
def staged_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on a clean exit it becomes ``path``.

    An existing ``path`` is replaced (see :func:`replace_dir`). On an exception the
    temporary folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_copies(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-"))
    try:
        yield tmp
        replace_dir(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename


def remove_stale_copies(path: Path) -> None:
    """Remove the temporary and set-aside copies of ``path`` (a file or a folder) that a
    killed process left beside it (a bundle's can be as large as a model), keeping those
    of live processes.

    The copies carry their writer's pid (``.NAME.tmp-PID-*``, ``.NAME.old-PID``); a pid
    that no process has any more marks a leftover.
    """
    for kind in ("tmp", "old"):
        for copy in path.parent.glob(f".{path.name}.{kind}-*"):
            pid = copy.name.removeprefix(f".{path.name}.{kind}-").split("-")[0]
            if pid.isdigit() and not _alive(int(pid)):
                if copy.is_dir():
                    shutil.rmtree(copy, ignore_errors=True)
                else:
                    copy.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def replace_dir(tmp: Path, path: Path) -> None:
    """Rename folder ``tmp`` to ``path``; an existing ``path`` is moved aside, then removed.

    Two renames rather than one because a folder cannot replace a non-empty folder in
    one ``os.replace``; between them ``path`` is briefly absent, never half-written.
    """
    if not path.exists():
        os.replace(tmp, path)
        return
    old = path.parent / f".{path.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)  # left by an earlier crash of this pid
    os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


MAX_YAML_VALUES = 100_000
"""Most values a user's YAML file may hold once its aliases are expanded."""


def read_user_yaml(path: str | Path, what: str) -> Any:
    """The content of a user's YAML file (``{}`` when empty), refusing in one line a file
    that is missing, not YAML, or that its aliases blow up ("billion laughs": a few lines
    whose references expand to 10**9 values, which a reader walking it would never finish);
    ``what`` names it in the message ("config file")."""
    path = Path(path)
    if not path.is_file():
        raise AdapterkitError(f"{path}: {what} not found")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise AdapterkitError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if _expanded_size(content, MAX_YAML_VALUES) > MAX_YAML_VALUES:
        raise AdapterkitError(
            f"{path}: expands to more than {MAX_YAML_VALUES:,} values (YAML aliases?)"
        )
    return content


def _expanded_size(value: Any, budget: int) -> int:
    """How many values ``value`` holds as a tree (shared parts counted each time they
    appear), counting no further than just past ``budget``."""
    seen, stack = 0, [value]
    while stack and seen <= budget:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return seen


def check_writable_dir(path: str | Path, what: str) -> Path:
    """Check that folder ``path`` can be created (or exists) and written, leaving nothing.

    Called before a run does any work, so that a bad ``--output`` fails at once rather
    than after training.

    Raises:
        AdapterkitError: One line when ``path`` is a file, lies under one, or its nearest
            existing folder cannot be written ("run folder" names it as ``what``).
    """
    path = Path(path).absolute()
    if path.exists() and not path.is_dir():
        raise AdapterkitError(f"{path}: the {what} is a file, not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise AdapterkitError(f"{path}: cannot create the {what}: {existing} is a file")
    # Permission bits do not tell (root passes os.access on a read-only /proc): try it.
    try:
        probe = Path(tempfile.mkdtemp(dir=existing, prefix=".adapterkit-probe-"))
        probe.rmdir()
        if existing != path:
            path.mkdir(parents=True)
            for created in (path, *path.parents):  # leave nothing behind
                if created == existing:
                    break
                created.rmdir()
    except OSError as exc:
        raise AdapterkitError(f"{path}: cannot create the {what} ({exc.strerror})") from None
    return path


def check_not_over_inputs(out: str | Path, flag: str, inputs: dict[str, str | Path | None]) -> None:
    """Refuse an output folder that is, or holds, one of the command's inputs: writing it
    (a staged folder renamed over the old one) would delete that input.

    Args:
        out: The folder a command will write (or replace).
        flag: How the user named it (``--out``, ``--output``), for the message.
        inputs: How the user named each input (``--init-from``, ``bundle 2``) to its path;
            None and paths that do not exist are skipped.

    Raises:
        AdapterkitError: One line naming the input that would be lost.
    """
    target = Path(out).resolve()
    for name, path in inputs.items():
        if path is None or not Path(path).exists():  # e.g. a built-in data set's name
            continue
        source = Path(path).resolve()
        if target == source or target in source.parents:
            raise AdapterkitError(
                f"{flag} {out} is (or holds) {name} {path}; writing there would replace it: "
                "pick a new folder"
            )

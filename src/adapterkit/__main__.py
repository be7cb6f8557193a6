"""``python -m adapterkit`` = the ``adapterkit`` command."""

import sys

from adapterkit.cli import main

sys.exit(main())

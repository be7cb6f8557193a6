"""The adapterkit release, in a module of its own so that any layer can read it.

``pyproject.toml`` reads the package version from here (setuptools' dynamic version),
so there is one place to bump it.
"""

__version__ = "0.1.0"

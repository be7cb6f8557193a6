"""User-facing errors.

Anything a user can cause (bad data, a wrong bundle, an unknown model) raises
:class:`AdapterkitError` with a one-line message; the CLI prints that line and
exits non-zero instead of showing a traceback.
"""


class AdapterkitError(Exception):
    """An error caused by user input, reported as one clear line."""


class BundleError(AdapterkitError):
    """A bundle on disk is missing, corrupt, or does not fit the base model."""


class DataError(AdapterkitError):
    """A data file or data set cannot be used as given."""

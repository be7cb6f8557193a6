"""Time to quality (docs/time_to_quality.md): how long each tool takes, at its documented
settings, until its adapter's validation score reaches the best peer adapter's final one.
``python -m benchmarks.time_to_quality``; see :mod:`benchmarks.time_to_quality.__main__`."""

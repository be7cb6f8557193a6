"""A hyperparameter search against the defaults: ``python -m benchmarks.search_study``."""

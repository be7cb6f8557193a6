"""Hyperparameter search over adapters, its trials trained side by side (``adapterkit search``)."""

from adapterkit.search.space import DEFAULT_SPACE, Param, load_space, parse_space
from adapterkit.search.study import SearchRequest, run_search

__all__ = ["DEFAULT_SPACE", "Param", "SearchRequest", "load_space", "parse_space", "run_search"]

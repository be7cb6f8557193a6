"""Method registry: a method name (or preset alias) to its config class.

Each method folder registers itself on import with :func:`register_method`.
Presets are user-facing aliases (``houlsby``, ``pfeiffer``, ``parallel``) that
fill in fields of a method's config.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from adapterkit.errors import AdapterkitError
from adapterkit.methods.base import AdapterConfig, AdapterModule

_METHODS: dict[str, type[AdapterConfig]] = {}
_PRESETS: dict[str, tuple[str, dict[str, Any]]] = {}


def register_method(
    config_cls: type[AdapterConfig], presets: dict[str, dict[str, Any]] | None = None
) -> None:
    """Register a method's config class under ``config_cls.method`` plus optional presets."""
    _METHODS[config_cls.method] = config_cls
    for alias, values in (presets or {}).items():
        _PRESETS[alias] = (config_cls.method, values)


def known_methods() -> list[str]:
    """Method names and preset aliases, sorted."""
    return sorted(set(_METHODS) | set(_PRESETS))


def registered_configs() -> list[type[AdapterConfig]]:
    """The config class of every registered method, in registration order."""
    return list(_METHODS.values())


def config_class(method: str) -> type[AdapterConfig]:
    """The config class stored under ``method`` (or the method a preset alias fills in);
    unknown names raise a clear error."""
    if method in _PRESETS:
        method = _PRESETS[method][0]
    if method not in _METHODS:
        raise AdapterkitError(
            f"unknown adapter method '{method}'; known: {', '.join(known_methods())}"
        )
    return _METHODS[method]


def make_config(method: str, **overrides: Any) -> AdapterConfig:
    """Build a config from a method name or preset alias, with field overrides.

    ``None`` overrides are ignored so CLI flags left unset keep the method defaults.
    """
    values = {k: v for k, v in overrides.items() if v is not None}
    if method in _PRESETS:
        base_method, preset = _PRESETS[method]
        return config_class(base_method).from_dict({**preset, **values})
    return config_class(method).from_dict(values)


def config_from_dict(method: str, values: dict[str, Any]) -> AdapterConfig:
    """Rebuild a stored config (as written in a bundle)."""
    return config_class(method).from_dict(values)


def _import_method_packages() -> None:
    """Import every method folder under this package: each registers itself on import, so
    adding a method touches only its own folder. Sorted, for a stable registration order."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.ispkg:
            importlib.import_module(f"{__name__}.{info.name}")


_import_method_packages()
from adapterkit.methods.base_only import NoAdapterConfig  # noqa: E402

register_method(NoAdapterConfig, presets={"head": {}, "full": {}})

__all__ = [
    "AdapterConfig",
    "AdapterModule",
    "config_class",
    "config_from_dict",
    "known_methods",
    "make_config",
    "register_method",
    "registered_configs",
]

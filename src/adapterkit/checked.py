"""Options checked where they are defined: each dataclass field's value against its
annotation (the type) and its metadata (range and choices).

One set of rules, whether a value came from a flag, a YAML file, a bundle's config or
a search space: a config class calls :func:`check_fields` in ``__post_init__``, and
its fields say what they accept::

    epochs: int = field(default=5, metadata={"min": 1})
    lr: float | None = field(default=None, metadata={"above": 0})

Range keys: ``min``/``max`` (inclusive), ``above``/``below`` (exclusive). Floats must
be finite. A list field applies the rules to each element; a single value given for a
list field becomes a list of one. YAML 1.1 reads ``1e-3`` as a string, so a float field
also takes a string that Python reads as a number.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from pathlib import Path
from typing import Any

from adapterkit.errors import AdapterkitError

RANGE_KEYS = {"min": ">=", "max": "<=", "above": ">", "below": "<"}


def check_fields(obj: Any, where: str = "", as_flags: bool = False) -> None:
    """Check (and normalise: int to float, str to Path) every field of dataclass ``obj``.

    Args:
        obj: A dataclass instance, typically ``self`` in ``__post_init__``.
        where: Prefix of the names in messages (``"lora: "`` for a method's config).
        as_flags: Name fields as flags (``--max-batch``) in messages, for settings that
            only flags set; else by field name, which is also the YAML key, followed by
            the flag where its spelling differs (``r (--rank)``, ``train_file (--train)``).

    Raises:
        AdapterkitError: One line naming the first field whose value does not fit.
    """
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        if f.name in hints:
            value = getattr(obj, f.name)
            name = default_flag(f.name) if as_flags else _key_and_flag(f)
            checked = check_value(where + name, hints[f.name], value, f.metadata)
            if checked is not value:
                object.__setattr__(obj, f.name, checked)  # frozen dataclasses too


def default_flag(name: str) -> str:
    """The flag of a field named ``name`` unless its metadata names another: ``--max-batch``."""
    return "--" + name.replace("_", "-")


def field_flag(f: dataclasses.Field) -> str | None:
    """The command-line flag that sets field ``f``: its metadata's ``flag`` (None: no flag),
    else :func:`default_flag`."""
    return f.metadata.get("flag", default_flag(f.name))


def _key_and_flag(f: dataclasses.Field) -> str:
    """A field's name, with its flag in parentheses where the flag is not the name spelled
    with dashes: a user who typed ``--rank 0`` should find ``--rank`` in the message."""
    flag = field_flag(f)
    if flag is None or flag == default_flag(f.name):
        return f.name
    return f"{f.name} ({flag})"


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check_value(name: str, hint: Any, value: Any, rules: typing.Mapping[str, Any]) -> Any:
    """``value`` as field ``name`` of type ``hint`` with metadata ``rules`` holds it.

    Raises:
        AdapterkitError: The value has the wrong type, is out of range or not a choice.
    """
    value = _typed(name, hint, value)
    items = value if isinstance(value, list) else [value]
    for item in items:
        if item is None or isinstance(item, bool):
            continue
        choices = rules.get("choices")
        if choices is not None and item not in choices:
            raise AdapterkitError(
                f"{name} must be one of {', '.join(map(str, choices))}, got {_shown(item)}"
            )
        if isinstance(item, int | float):
            _check_range(name, item, rules)
    return value


def _typed(name: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            if type(None) in options:
                return None
            raise AdapterkitError(f"{name} must be {_expected(hint)}, got null")
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _typed(name, option, value)
            except AdapterkitError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise AdapterkitError(f"{name} must be {_expected(hint)}, got {_shown(value)}")
    if origin is list:
        (element,) = typing.get_args(hint) or (Any,)
        items = list(value) if isinstance(value, list | tuple) else [value]
        return [_typed(f"{name}[{i}]", element, item) for i, item in enumerate(items)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise AdapterkitError(f"{name} must be a mapping, got {_shown(value)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise AdapterkitError(f"{name} must be true or false, got {_shown(value)}")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise AdapterkitError(f"{name} must be an integer, got {_shown(value)}")
        return value
    if hint is float:
        return _as_float(name, value)
    if hint is str:
        if not isinstance(value, str):
            raise AdapterkitError(f"{name} must be a string, got {_shown(value)}")
        return value
    if hint is Path:
        if not isinstance(value, str | Path):
            raise AdapterkitError(f"{name} must be a path, got {_shown(value)}")
        return Path(value)
    return value  # Any, callables: nothing to check


def _as_float(name: str, value: Any) -> float:
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise AdapterkitError(f"{name} must be a number, got {_shown(value)}") from None
    if not isinstance(number, int | float) or isinstance(number, bool):
        raise AdapterkitError(f"{name} must be a number, got {_shown(value)}")
    number = float(number)
    if not math.isfinite(number):
        raise AdapterkitError(f"{name} must be a finite number, got {_shown(value)}")
    return number


def _check_range(name: str, number: float, rules: typing.Mapping[str, Any]) -> None:
    bounds = [(key, rules[key]) for key in RANGE_KEYS if key in rules]
    ok = all(
        {
            "min": number >= bound,
            "max": number <= bound,
            "above": number > bound,
            "below": number < bound,
        }[key]
        for key, bound in bounds
    )
    if not ok:
        wanted = " and ".join(f"{RANGE_KEYS[key]} {_bound(bound)}" for key, bound in bounds)
        raise AdapterkitError(f"{name} must be {wanted}, got {_shown(number)}")


def _expected(hint: Any) -> str:
    kept = [a for a in typing.get_args(hint) if a is not type(None)]
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    described = [names.get(a, "a list" if typing.get_origin(a) is list else str(a)) for a in kept]
    return " or ".join(described)


def _bound(bound: float) -> str:
    """An integer bound in full (a seed's 4294967295, not 4.29497e+09), others short."""
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

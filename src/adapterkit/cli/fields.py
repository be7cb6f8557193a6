"""Command-line flags and YAML keys generated from the fields of a dataclass.

A field with a docstring under it::

    max_length: int = 128
    \"\"\"Token cap per example.\"\"\"

becomes the flag ``--max-length`` (``type=int``, help ``Token cap per example.
(default: 128)``) and the YAML key ``max_length``. The type comes from the
annotation: ``int``, ``float``, ``str``, ``bool`` (a switch), ``X | None`` and
``list[X]`` (``nargs="+"``). ``dataclasses.field(metadata=...)`` says what cannot be
inferred:

- ``flag``: another spelling (``"--rank"``), or ``None`` for no flag at all (the
  field stays a YAML key, e.g. a field that method presets set);
- ``dest``: another argparse destination, also accepted as a YAML key;
- ``choices``: the allowed values;
- ``aliases``: more option strings for the same flag (``--seeds`` for ``--seed``).

So adding an option is adding one field with its docstring.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Any

from adapterkit.checked import field_flag

# Besides these, the range keys of adapterkit.checked (checked there, not by argparse).
METADATA_KEYS = frozenset({"flag", "dest", "choices", "aliases", "min", "max", "above", "below"})
FLAG_TYPES = (int, float, str, bool)


@dataclass(frozen=True)
class FieldFlag:
    """One dataclass field as a command-line flag and a YAML key."""

    name: str
    """The field's name; also its YAML key."""
    dest: str
    """Where argparse stores the value; also accepted as a YAML key."""
    flag: str | None
    """The option string (``--max-length``); None when the field is a YAML key only."""
    kind: type | None
    """int, float, str or bool (of each element, for a list); None for no flag."""
    many: bool
    """Whether the field is a list, given as one or more values."""
    help: str
    """The field's docstring and its default."""
    choices: tuple[Any, ...] | None = None
    """The allowed values, when metadata names them."""
    aliases: tuple[str, ...] = ()
    """More option strings for the same flag."""

    @property
    def keys(self) -> set[str]:
        """The YAML keys that set this field: its name, its dest and its flag's spelling
        (``train`` for ``--train``, ``name`` for ``--name``)."""
        spelled = {self.flag[2:].replace("-", "_")} if self.flag else set()
        return {self.name, self.dest} | spelled


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` and its dataclass bases.

    Read from the source with ``ast`` (Python keeps no such strings at run time), with
    whitespace collapsed and ``code`` markup removed, ready to be help text.
    """
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's docstring wins over its base's
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # no source to read (defined in a REPL, say)
            continue
        class_def = ast.parse(source).body[0]
        if not isinstance(class_def, ast.ClassDef):
            continue
        for node, after in itertools.pairwise(class_def.body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                text = " ".join(inspect.cleandoc(after.value.value).split())
                docs[node.target.id] = text.replace("``", "")
    return docs


def _flag_type(cls: type, name: str, hint: Any) -> tuple[type, bool]:
    """The element type and list-ness of a field annotation (``X | None`` counts as X)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kept = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = kept[0] if len(kept) == 1 else hint
    many = typing.get_origin(hint) is list
    if many:
        (hint,) = typing.get_args(hint) or (None,)
    if hint not in FLAG_TYPES or (many and hint is bool):
        raise TypeError(
            f"{cls.__name__}.{name}: no flag for type {hint!r}; "
            "use int, float, str, bool, X | None or list[X], or metadata={'flag': None}"
        )
    return hint, many


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list | tuple):
        return " ".join(map(str, value))
    return str(value)


def help_text(doc: str, default: Any) -> str:
    """``doc`` plus the default (left out when None: the doc says what None means)."""
    text = doc if default is None else f"{doc} (default: {_shown(default)})".strip()
    return text.replace("%", "%%")  # argparse %-formats help strings


def dataclass_flags(cls: type) -> list[FieldFlag]:
    """One :class:`FieldFlag` per field of dataclass ``cls``, in field order.

    Raises:
        TypeError: A field has unknown metadata keys, or a type no flag can take and no
            ``metadata={'flag': None}``: a programming error, caught by the tests.
    """
    hints = typing.get_type_hints(cls)
    docs, defaults = field_docs(cls), dataclass_defaults(cls)
    flags = []
    for f in dataclasses.fields(cls):
        unknown = set(f.metadata) - METADATA_KEYS
        if unknown:
            raise TypeError(f"{cls.__name__}.{f.name}: unknown metadata {sorted(unknown)}")
        flag = field_flag(f)
        kind, many = (None, False) if flag is None else _flag_type(cls, f.name, hints[f.name])
        choices = f.metadata.get("choices")
        flags.append(
            FieldFlag(
                name=f.name,
                dest=f.metadata.get("dest", f.name),
                flag=flag,
                kind=kind,
                many=many,
                help=help_text(docs.get(f.name, ""), defaults.get(f.name)),
                choices=tuple(choices) if choices is not None else None,
                aliases=tuple(f.metadata.get("aliases", ())),
            )
        )
    return flags


def add_flags(
    group: argparse.ArgumentParser | argparse._ArgumentGroup,
    flags: list[FieldFlag],
    *,
    defaults: dict[str, Any] | None = None,
    negatable_bools: bool = False,
    sweepable: bool = False,
) -> None:
    """Add each flag (those that are no flag are skipped) to a parser or argument group.

    Args:
        group: Where the flags go.
        flags: From :func:`dataclass_flags`.
        defaults: Parser default per field name; a field not named gets None, which
            means "not given" (the dataclass default applies, a config file can set it).
        negatable_bools: Switches get a ``--no-`` form too (BooleanOptionalAction), so a
            flag can turn off what a config file turned on; else they are store_true.
        sweepable: Single-valued flags (not switches) take one or more values; several
            values make one job per value (see :mod:`adapterkit.cli.jobs`).
    """
    defaults = defaults or {}
    for spec in flags:
        if spec.flag is None:
            continue
        kwargs: dict[str, Any] = {
            "dest": spec.dest,
            "default": defaults.get(spec.name),
            "help": spec.help,
        }
        if spec.kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction if negatable_bools else "store_true"
        else:
            kwargs["type"] = spec.kind
            if spec.many or sweepable:
                kwargs["nargs"] = "+"
            if spec.choices is not None:
                kwargs["choices"] = spec.choices
        group.add_argument(spec.flag, *spec.aliases, **kwargs)


def dataclass_defaults(cls: type) -> dict[str, Any]:
    """Each field's default (from its default_factory when it has one), by field name."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            values[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            values[f.name] = f.default_factory()
    return values

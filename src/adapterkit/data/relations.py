"""Relation-extraction records: one sentence, a head and a tail entity, a relation.

Two layouts are read, both into one example form,
``{"text": str, "head": [start, end], "tail": [start, end], "relation": str}``
with character offsets into ``text`` (end exclusive, as in Python slicing):

- JSON lines: ``{"text", "head", "tail", "relation"}``, each entity either
  ``[start, end]`` or ``{"start": s, "end": e}`` (an optional ``"text"`` there must
  match the span);
- TACRED: ``{"token": [...], "subj_start", "subj_end", "obj_start", "obj_end",
  "relation"}`` with *inclusive* token indices; the tokens are joined by single spaces
  and the spans become character offsets into that text.

Everything here raises :class:`DataError` naming ``where`` (``file:line``).
"""

from __future__ import annotations

import json
from typing import Any

from adapterkit.errors import DataError

Span = list[int]
TACRED_FIELDS = ("token", "subj_start", "subj_end", "obj_start", "obj_end")


def looks_like_relations(keys: set[str]) -> bool:
    """Whether records with these fields are relation-extraction records."""
    return {"text", "head", "tail"} <= keys or {"token", "subj_start", "obj_start"} <= keys


def parse_span(where: str, text: str, value: Any, name: str) -> Span:
    """One entity of ``text`` as ``[start, end]``: in range, non-empty, not blank.

    ``value`` is ``[start, end]``, ``{"start": s, "end": e}`` (with an optional
    ``"text"`` that must equal the span), or either form as a JSON string (a CSV cell).
    """
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(f"{where}: {name} span {value!r} is not [start, end]") from None
    expected = None
    if isinstance(value, dict):
        expected = value.get("text")
        value = [value.get("start"), value.get("end")]
    if not (isinstance(value, list | tuple) and len(value) == 2):
        raise DataError(f"{where}: {name} span must be [start, end], got {value!r}")
    start, end = value
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
        raise DataError(f"{where}: {name} span offsets must be integers, got {list(value)!r}")
    if not 0 <= start < end <= len(text):
        raise DataError(
            f"{where}: {name} span [{start}, {end}] is not a non-empty range of the "
            f"{len(text)}-character text"
        )
    if not text[start:end].strip():
        raise DataError(f"{where}: {name} span [{start}, {end}] holds only whitespace")
    if expected is not None and expected != text[start:end]:
        raise DataError(
            f"{where}: {name} text {expected!r} is not the span [{start}, {end}] "
            f"({text[start:end]!r})"
        )
    return [start, end]


def check_pair(where: str, head: Span, tail: Span) -> None:
    """Refuse a head and tail that share characters: markers could not wrap both."""
    if head[0] < tail[1] and tail[0] < head[1]:
        raise DataError(f"{where}: head span {head} and tail span {tail} overlap")


def relation_example(where: str, rec: dict[str, Any], label_field: str = "label") -> dict:
    """One record of either layout → the example form of the module docs.

    The relation is read from ``relation`` (or ``label_field`` when there is none).
    """
    if "token" in rec:
        text, head, tail = _tacred(where, rec)
    else:
        text = rec.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: 'text' must be a non-empty string")
        head = parse_span(where, text, _field(where, rec, "head"), "head")
        tail = parse_span(where, text, _field(where, rec, "tail"), "tail")
    check_pair(where, head, tail)
    key = "relation" if "relation" in rec or label_field not in rec else label_field
    relation = _field(where, rec, key)
    if isinstance(relation, bool) or not isinstance(relation, str | int) or not str(relation):
        raise DataError(f"{where}: {key!r} must be a non-empty string, got {relation!r}")
    return {"text": text, "head": head, "tail": tail, "relation": str(relation).strip()}


def _field(where: str, rec: dict[str, Any], key: str) -> Any:
    if key not in rec:
        have = ", ".join(sorted(map(str, rec))) or "none"
        raise DataError(f"{where}: no field {key!r}; fields are: {have}")
    return rec[key]


def _tacred(where: str, rec: dict[str, Any]) -> tuple[str, Span, Span]:
    tokens = rec["token"]
    if not isinstance(tokens, list) or not tokens:
        raise DataError(f"{where}: 'token' must be a non-empty list of strings")
    if not all(isinstance(t, str) and t.strip() for t in tokens):
        raise DataError(f"{where}: every token must be a non-empty string")
    # starts[i]: character offset of token i in the space-joined text.
    starts, offset = [], 0
    for token in tokens:
        starts.append(offset)
        offset += len(token) + 1
    text = " ".join(tokens)

    def span(first_key: str, last_key: str, name: str) -> Span:
        first, last = _field(where, rec, first_key), _field(where, rec, last_key)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (first, last)):
            raise DataError(f"{where}: {first_key}/{last_key} must be integers")
        if not 0 <= first <= last < len(tokens):
            raise DataError(
                f"{where}: {name} tokens {first}..{last} are not a range of the "
                f"{len(tokens)} tokens (indices are inclusive)"
            )
        return [starts[first], starts[last] + len(tokens[last])]

    return text, span("subj_start", "subj_end", "subject"), span("obj_start", "obj_end", "object")

"""Turn raw records (a JSON object or a CSV row) into examples of one task.

Every function here takes ``(where, record)`` pairs, ``where`` being the
``file:line`` that errors should name, so that CSV, JSONL and ``datasets``
rows all go through the same checks and produce the same example dicts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from adapterkit.data.relations import looks_like_relations, relation_example
from adapterkit.data.splits import (
    CAUSAL_LM,
    MULTI_LABEL_CLASSIFICATION,
    QUESTION_ANSWERING,
    RELATION_EXTRACTION,
    SEQUENCE_CLASSIFICATION,
    TOKEN_CLASSIFICATION,
)
from adapterkit.errors import DataError

Record = tuple[str, dict[str, Any]]
TAG_FIELDS = ("tags", "ner_tags")
CHAT_ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class Columns:
    """Which fields hold the text and labels of a classification record."""

    text: str = "text"
    """Field with the input text."""
    text_pair: str | None = None
    """Field with the second text of a pair (NLI, paraphrase), if any."""
    label: str = "label"
    """Field with the label (or the list of labels, for multi-label)."""


def _looks_like_list(value: Any) -> bool:
    if isinstance(value, list):
        return True
    return isinstance(value, str) and value.strip().startswith("[") and value.strip().endswith("]")


def detect_task(records: Sequence[Record], columns: Columns) -> str:
    """Guess the task from the fields present, as documented in ``load_data``."""
    keys: set[str] = set()
    for _, rec in records[:100]:
        keys.update(rec)
    if "tokens" in keys and keys.intersection(TAG_FIELDS):
        return TOKEN_CLASSIFICATION
    if {"question", "context"} <= keys:
        return QUESTION_ANSWERING
    if looks_like_relations(keys):
        return RELATION_EXTRACTION
    if keys.intersection({"messages", "prompt", "response"}):
        return CAUSAL_LM
    if any(_looks_like_list(rec.get(columns.label)) for _, rec in records[:100]):
        return MULTI_LABEL_CLASSIFICATION
    return SEQUENCE_CLASSIFICATION


def _field(where: str, rec: dict[str, Any], key: str) -> Any:
    if key not in rec:
        have = ", ".join(sorted(map(str, rec))) or "none"
        raise DataError(f"{where}: no field {key!r}; fields are: {have}")
    return rec[key]


def _text(where: str, rec: dict[str, Any], key: str, allow_empty: bool = False) -> str:
    value = _field(where, rec, key)
    if not isinstance(value, str):
        raise DataError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise DataError(f"{where}: empty {key!r}")
    return value


def label_string(where: str, value: Any) -> str:
    """A label as a string: numbers become their string form, blanks are errors."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value).strip()
    else:
        raise DataError(f"{where}: label must be a string or a number, got {value!r}")
    if not text:
        raise DataError(f"{where}: empty label")
    return text


def _labels_list(where: str, value: Any) -> list[str]:
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError:
                raise DataError(f"{where}: labels {stripped!r} are not a valid JSON list") from None
        else:
            # "a|b|c" is how multi-label sets are written in CSV/TSV cells.
            value = [part for part in stripped.split("|") if part.strip()]
    if not isinstance(value, list):
        value = [value]
    out: list[str] = []
    for item in value:
        label = label_string(where, item)
        if label not in out:
            out.append(label)
    return out


def _classification(where: str, rec: dict[str, Any], cols: Columns, multi: bool) -> dict:
    text = _text(where, rec, cols.text)
    pair = _text(where, rec, cols.text_pair) if cols.text_pair else None
    raw = _field(where, rec, cols.label)
    if raw is None:
        raise DataError(f"{where}: empty label")
    if multi:
        return {"text": text, "text_pair": pair, "labels": _labels_list(where, raw)}
    if isinstance(raw, list):
        raise DataError(
            f"{where}: label is a list; read the file as multi-label (task "
            f"{MULTI_LABEL_CLASSIFICATION!r}) or give one label per example"
        )
    return {"text": text, "text_pair": pair, "label": label_string(where, raw)}


def _tokens(where: str, rec: dict[str, Any]) -> dict:
    tokens = _field(where, rec, "tokens")
    tag_key = next((k for k in TAG_FIELDS if k in rec), "tags")
    tags = _field(where, rec, tag_key)
    if not isinstance(tokens, list) or not isinstance(tags, list):
        raise DataError(f"{where}: 'tokens' and {tag_key!r} must be lists")
    if not tokens:
        raise DataError(f"{where}: empty 'tokens'")
    if len(tokens) != len(tags):
        raise DataError(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
    if not all(isinstance(t, str) and t.strip() for t in tokens):
        raise DataError(f"{where}: every token must be a non-empty string")
    return {"tokens": tokens, "tags": [label_string(where, t) for t in tags]}


def _answers(where: str, rec: dict[str, Any], context: str) -> dict:
    raw = _field(where, rec, "answers")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)  # a CSV cell holding the SQuAD dict
        except json.JSONDecodeError:
            raise DataError(f"{where}: 'answers' is not valid JSON") from None
    if isinstance(raw, list):  # SQuAD's nested form: [{"text": ..., "answer_start": ...}]
        raw = {
            "text": [a.get("text") if isinstance(a, dict) else a for a in raw],
            "answer_start": [a.get("answer_start") if isinstance(a, dict) else None for a in raw],
        }
    if not isinstance(raw, dict) or not isinstance(raw.get("text"), list):
        raise DataError(f"{where}: 'answers' must be {{'text': [...], 'answer_start': [...]}}")
    texts = raw["text"]
    starts = raw.get("answer_start") or [None] * len(texts)
    if len(starts) != len(texts):
        raise DataError(f"{where}: {len(texts)} answer texts but {len(starts)} answer_start values")
    out: dict[str, list] = {"text": [], "answer_start": []}
    for text, start in zip(texts, starts, strict=True):
        if not isinstance(text, str) or not text:
            raise DataError(f"{where}: answer text must be a non-empty string, got {text!r}")
        if start is None:
            start = context.find(text)  # no offset given: take the first occurrence
            if start < 0:
                raise DataError(f"{where}: answer {text!r} does not occur in the context")
        if not isinstance(start, int) or context[start : start + len(text)] != text:
            raise DataError(f"{where}: answer {text!r} is not in the context at {start}")
        out["text"].append(text)
        out["answer_start"].append(start)
    return out


def _qa(where: str, rec: dict[str, Any]) -> dict:
    context = _text(where, rec, "context")
    example = {
        "question": _text(where, rec, "question"),
        "context": context,
        "answers": _answers(where, rec, context),
    }
    if "id" in rec:
        example["id"] = str(rec["id"])
    return example


def _chat(where: str, rec: dict[str, Any]) -> dict:
    messages = rec["messages"]
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty list")
    out = []
    for msg in messages:
        if not isinstance(msg, dict) or not isinstance(msg.get("content"), str):
            raise DataError(f"{where}: each message needs 'role' and a string 'content'")
        if msg.get("role") not in CHAT_ROLES:
            raise DataError(
                f"{where}: message role {msg.get('role')!r} is not one of {', '.join(CHAT_ROLES)}"
            )
        out.append({"role": msg["role"], "content": msg["content"]})
    if not any(m["role"] == "assistant" and m["content"].strip() for m in out):
        raise DataError(f"{where}: 'messages' need a non-empty 'assistant' message to learn")
    return {"messages": out}


def _causal(where: str, rec: dict[str, Any]) -> dict:
    if "messages" in rec:
        return _chat(where, rec)
    if "prompt" not in rec or "response" not in rec:
        raise DataError(f"{where}: needs 'prompt' and 'response' (or 'messages')")
    prompt = _text(where, rec, "prompt", allow_empty=True)
    response = _text(where, rec, "response", allow_empty=True)
    if not response.strip():
        raise DataError(f"{where}: empty 'response'")
    extra = {k: rec[k] for k in ("source", "reference") if isinstance(rec.get(k), str)}
    return {"prompt": prompt, "response": response, **extra}


def convert_records(records: Sequence[Record], task: str, columns: Columns) -> list[dict]:
    """Convert raw records into examples of ``task`` (formats in ``adapterkit.data``).

    Raises:
        DataError: ``file:line: ...`` for the first record that does not fit.
    """
    convert: Callable[[str, dict[str, Any]], dict]
    if task == SEQUENCE_CLASSIFICATION:
        convert = lambda w, r: _classification(w, r, columns, multi=False)  # noqa: E731
    elif task == MULTI_LABEL_CLASSIFICATION:
        convert = lambda w, r: _classification(w, r, columns, multi=True)  # noqa: E731
    elif task == TOKEN_CLASSIFICATION:
        convert = _tokens
    elif task == QUESTION_ANSWERING:
        convert = _qa
    elif task == CAUSAL_LM:
        convert = _causal
    elif task == RELATION_EXTRACTION:
        convert = lambda w, r: relation_example(w, r, columns.label)  # noqa: E731
    else:
        raise DataError(f"unknown task {task!r}")
    return [convert(where, rec) for where, rec in records]

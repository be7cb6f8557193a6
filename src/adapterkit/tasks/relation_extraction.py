"""Relation extraction as sequence classification over entity-marked text.

The recipe of Soares et al. 2019 ("Matching the Blanks"), entity-marker variant:
wrap the head and tail entity in marker strings and classify the marked sentence
with :class:`~adapterkit.tasks.classification.SequenceClassificationTask`. No new
task type, head or bundle format is needed; ``docs/relation_extraction.md`` walks
through it from a JSONL file to ``adapterkit train``.

Markers are plain text by default (``<e1> ... </e1>``): the tokenizer splits them
into sub-tokens it already has, so a frozen base needs no new embeddings. Dedicated
special tokens (:data:`SPECIAL_MARKERS` with :func:`add_marker_tokens`) are one id
each, but then the base's embedding matrix must grow and its new rows be trained,
which a frozen base (and its bundle fingerprint) does not allow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapterkit.errors import DataError

Span = tuple[int, int]
PLAIN_MARKERS = ("<e1>", "</e1>", "<e2>", "</e2>")
SPECIAL_MARKERS = ("[E1]", "[/E1]", "[E2]", "[/E2]")


def _check_span(text: str, span: Any, name: str) -> Span:
    if not (isinstance(span, (list, tuple)) and len(span) == 2):
        raise DataError(f"{name} span must be [start, end], got {span!r}")
    start, end = span
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
        raise DataError(
            f"{name} span {list(span)} is not a non-empty range of the {len(text)}-character text"
        )
    return start, end


def mark_entities(
    text: str, head_span: Span, tail_span: Span, markers: tuple[str, ...] = PLAIN_MARKERS
) -> str:
    """Wrap the head and tail entities of ``text`` in marker strings.

    Each marker is separated from the entity by one space, so that word-level
    tokenizers (BPE, SentencePiece) see the entity's words as they see them unmarked.

    Args:
        text: The sentence.
        head_span: ``(start, end)`` character offsets of the head entity (end exclusive).
        tail_span: The same for the tail entity; it may come before the head.
        markers: Head open/close and tail open/close strings.

    Returns:
        The marked text, e.g. ``"<e1> John </e1> works at <e2> Acme </e2>."``.

    Raises:
        DataError: If a span is empty, out of range, or the two spans overlap.
    """
    if len(markers) != 4:
        raise DataError(
            "markers must be four strings: head open, head close, tail open, tail close"
        )
    head, tail = _check_span(text, head_span, "head"), _check_span(text, tail_span, "tail")
    if head[0] < tail[1] and tail[0] < head[1]:
        raise DataError(f"head span {list(head)} and tail span {list(tail)} overlap")
    wraps = sorted([(head, markers[0], markers[1]), (tail, markers[2], markers[3])])
    pieces, cursor = [], 0
    for (start, end), opening, closing in wraps:
        pieces += [text[cursor:start], f"{opening} {text[start:end]} {closing}"]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def relation_example(
    text: str,
    head_span: Span,
    tail_span: Span,
    relation: str,
    markers: tuple[str, ...] = PLAIN_MARKERS,
) -> dict[str, Any]:
    """A sequence-classification example (``text``/``text_pair``/``label``) for one relation."""
    if not isinstance(relation, str) or not relation:
        raise DataError(f"relation must be a non-empty string, got {relation!r}")
    return {
        "text": mark_entities(text, head_span, tail_span, markers),
        "text_pair": None,
        "label": relation,
    }


def convert_relation_file(
    source: str | Path, target: str | Path, markers: tuple[str, ...] = PLAIN_MARKERS
) -> int:
    """Convert a relation JSONL file to a classification JSONL file ``adapterkit train`` reads.

    Each source line is ``{"text": str, "head": [start, end], "tail": [start, end],
    "relation": str}``; each target line is ``{"text": marked text, "label": relation}``.

    Returns:
        The number of examples written.

    Raises:
        DataError: Naming ``file:line`` for malformed lines or bad spans.
    """
    rows = []
    lines = Path(source).read_text(encoding="utf-8").splitlines()
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            example = relation_example(
                rec["text"], rec["head"], rec["tail"], rec["relation"], markers
            )
        except (json.JSONDecodeError, KeyError, TypeError, DataError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise DataError(f"{source}:{lineno}: {detail}") from None
        rows.append(
            json.dumps({"text": example["text"], "label": example["label"]}, ensure_ascii=False)
        )
    Path(target).write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    return len(rows)


def add_marker_tokens(tokenizer: Any, markers: tuple[str, ...] = SPECIAL_MARKERS) -> int:
    """Register ``markers`` as special tokens so each becomes a single, never-split id.

    Only for setups that also train the embeddings: the caller must then call
    ``base.resize_token_embeddings(len(tokenizer))`` and train the new rows. With a
    frozen base, keep the default :data:`PLAIN_MARKERS` instead (see the module docs).

    Returns:
        How many tokens were new to the tokenizer.
    """
    # add_tokens(special_tokens=True) rather than add_special_tokens(): the latter's
    # dict key changed in transformers 5 and it replaces any extra special tokens.
    return int(tokenizer.add_tokens(list(markers), special_tokens=True))

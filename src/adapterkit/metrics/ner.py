"""Entity-level metrics for token tagging (NER, chunking) on top of seqeval.

An entity counts as found only when its type *and both boundaries* match the gold
one: a prediction that gets most tokens right but cuts the span short scores zero
for that entity, which is how CoNLL results are reported and what users compare to.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from typing import Any, Literal

from adapterkit.errors import DataError

NerMode = Literal["strict", "lenient"]

# The tags strict IOB2 accepts: "O", or B-/I- followed by a non-empty type.
_IOB2_TAG = re.compile(r"^(O|[BI]-.+)$")


def _first_invalid_tag(sequences: Sequence[Sequence[str]]) -> tuple[int, int, str] | None:
    for i, seq in enumerate(sequences):
        for j, tag in enumerate(seq):
            if not _IOB2_TAG.match(tag):
                return i, j, tag
    return None


def _finite(x: Any) -> float:
    # seqeval returns NaN macro averages when there are no entities at all; 0.0 keeps
    # the JSON valid and matches seqeval's own zero_division=0 for the micro average.
    x = float(x)
    return x if math.isfinite(x) else 0.0


def ner_metrics(
    y_true: Sequence[Sequence[str]],
    y_pred: Sequence[Sequence[str]],
    *,
    mode: NerMode = "strict",
) -> dict[str, Any]:
    """Entity-level precision/recall/F1 per type and overall, plus token accuracy.

    Two ways to read tags, chosen by ``mode``:

    * ``"strict"`` (default): seqeval's strict IOB2 mode. An entity is a ``B-X``
      followed by ``I-X`` tags; an ``I-X`` that does not continue an ``X`` entity
      (e.g. after ``O``) starts no entity, so a model that never learned to emit
      ``B-`` gets no credit. Tags other than ``O``/``B-*``/``I-*`` (``E-``/``S-``
      of IOBES, a bare ``PER``) raise :class:`~adapterkit.errors.DataError`.
    * ``"lenient"``: the conlleval rules (seqeval's default mode): an ``I-X`` after
      ``O`` or another type starts a new ``X`` entity, and unknown tags are read
      as best as seqeval can (with a warning). Use it for data that is IOB1 or
      otherwise not clean IOB2, or to compare with numbers computed by conlleval.

    Strict is the default because it is the one that cannot over-credit a model;
    we never fall back to lenient silently, since the two give different numbers.

    Args:
        y_true: Gold tag sequence of each sentence.
        y_pred: Predicted tag sequence of each sentence; each must have the same
            length as its gold sequence.
        mode: ``"strict"`` or ``"lenient"``, see above.

    Returns:
        A dict with ``f1``, ``precision``, ``recall`` (micro average over entities:
        the headline CoNLL numbers); ``accuracy`` (token level, ``O`` included);
        ``macro_f1``, ``macro_precision``, ``macro_recall`` (mean over entity types);
        ``support`` (number of gold entities); ``per_type``
        ``{type: {precision, recall, f1, support}}``; ``mode``.

    Raises:
        ValueError: If the number of sentences or any sentence's length differ, or
            there are no tokens at all.
        DataError: In strict mode, if a tag is not valid IOB2.
    """
    if mode not in ("strict", "lenient"):
        raise ValueError(f"mode must be 'strict' or 'lenient', got {mode!r}")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} sentences but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("cannot compute metrics on zero sentences")
    y_true = [list(seq) for seq in y_true]
    y_pred = [list(seq) for seq in y_pred]
    for i, (t, p) in enumerate(zip(y_true, y_pred, strict=True)):
        if len(t) != len(p):
            raise ValueError(f"sentence {i}: {len(t)} gold tags but {len(p)} predicted")
    if not any(y_true):
        raise ValueError("cannot compute metrics on sentences without tokens")

    # Imported here: seqeval imports scikit-learn, about a second that every command would
    # pay on import (metrics.classification says the same).
    from seqeval.metrics import accuracy_score, classification_report
    from seqeval.scheme import IOB2

    kwargs: dict[str, Any] = {}
    if mode == "strict":
        for name, seqs in (("gold", y_true), ("predicted", y_pred)):
            bad = _first_invalid_tag(seqs)
            if bad is not None:
                # seqeval's own error here is a bare KeyError; name the tag and where.
                i, j, tag = bad
                raise DataError(
                    f"{name} tag {tag!r} (sentence {i}, token {j}) is not IOB2; "
                    "convert the tags or use mode='lenient'"
                )
        kwargs = {"mode": "strict", "scheme": IOB2}

    with warnings.catch_warnings():
        # Mean-of-empty warnings of an entity-free corpus; handled by _finite.
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(y_true, y_pred, output_dict=True, zero_division=0, **kwargs)
        accuracy = float(accuracy_score(y_true, y_pred))

    micro, macro = report.pop("micro avg"), report.pop("macro avg")
    report.pop("weighted avg", None)
    per_type = {
        name: {
            "precision": float(row["precision"]),
            "recall": float(row["recall"]),
            "f1": float(row["f1-score"]),
            "support": int(row["support"]),
        }
        for name, row in sorted(report.items())
    }
    return {
        "f1": _finite(micro["f1-score"]),
        "precision": _finite(micro["precision"]),
        "recall": _finite(micro["recall"]),
        "accuracy": accuracy,
        "macro_f1": _finite(macro["f1-score"]),
        "macro_precision": _finite(macro["precision"]),
        "macro_recall": _finite(macro["recall"]),
        "support": int(micro["support"]),
        "per_type": per_type,
        "mode": mode,
    }


__all__ = ["NerMode", "ner_metrics"]

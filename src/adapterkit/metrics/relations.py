"""Relation-extraction scores: micro P/R/F1 over relations, the no-relation label left out.

The TACRED scorer's convention (Zhang et al. 2017): a prediction counts as a guess
unless it is the no-relation label, a gold pair counts unless it is; a guess is
correct when it equals its gold relation. Predicting "no relation" everywhere then
scores F1 0, however common that label is, which accuracy would hide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapterkit.metrics.classification import classification_metrics

NO_RELATION_NAMES = ("no_relation", "no-relation", "norelation", "other", "na", "n/a", "none")
"""Label names read as "no relation" (case-insensitive): TACRED's ``no_relation``,
SemEval-2010 Task 8's ``Other``, distant-supervision sets' ``NA``."""


def find_no_relation(label_names: Sequence[str]) -> str | None:
    """The label of the set that means "no relation" (see :data:`NO_RELATION_NAMES`)."""
    by_name = {name.lower(): name for name in label_names}
    return next((by_name[n] for n in NO_RELATION_NAMES if n in by_name), None)


def relation_scores(
    y_true: Sequence[str], y_pred: Sequence[str], no_relation: str | None
) -> dict[str, float]:
    """Micro precision, recall and F1 over the pairs whose gold or guess is a relation."""
    guessed = sum(p != no_relation for p in y_pred)
    gold = sum(t != no_relation for t in y_true)
    correct = sum(p == t != no_relation for t, p in zip(y_true, y_pred, strict=True))
    precision = correct / guessed if guessed else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def relation_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], label_names: Sequence[str]
) -> dict[str, Any]:
    """The classification report of :func:`classification_metrics` (accuracy, per-relation
    ``per_class``, confusion matrix, macro averages), with the headline ``precision``,
    ``recall`` and ``f1`` replaced by the micro scores over relations (no-relation label
    excluded, see the module docs) and ``no_relation`` naming that label (None: the label
    set has none, and every label counts).

    Raises:
        ValueError: If the lengths differ or there are no examples.
    """
    report = classification_metrics(y_true, y_pred, label_names)
    no_relation = find_no_relation(label_names)
    return {
        **report,
        **relation_scores([str(y) for y in y_true], [str(y) for y in y_pred], no_relation),
        "no_relation": no_relation,
    }


__all__ = ["NO_RELATION_NAMES", "find_no_relation", "relation_metrics", "relation_scores"]

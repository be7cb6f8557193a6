"""Sequence-classification metrics (single-label and multi-label) on top of scikit-learn.

Every value is a plain Python float in [0, 1] (or an int count), so the dicts go
straight into ``metrics.json``. ``precision``/``recall``/``f1`` at the top level are
the macro averages, the same keys every task writes, so runs of different tasks can
be compared by one script.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# scikit-learn is imported where a score is computed, not here: importing it takes about
# a second, and every command imports this module (through adapterkit.tasks), including
# the ones that never score (serve, predict, a refused option).


def _check_lengths(y_true: Sequence[Any], y_pred: Sequence[Any]) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    if len(y_true) == 0:
        raise ValueError("cannot compute metrics on zero examples")


def _scored_labels(label_names: Sequence[str], true_labels: Sequence[str]) -> list[str]:
    """The labels macro averages run over: ``label_names`` plus unseen gold labels.

    A gold label missing from ``label_names`` has support, so dropping it would hide
    errors; a label that only the model predicts has no support and would drag every
    macro average towards zero without describing any class, so it is left out here
    (it still counts as wrong in accuracy and micro scores, and shows in the matrix).
    """
    known = list(dict.fromkeys(label_names))
    extra = sorted(set(true_labels) - set(known))
    return known + extra


def _prf(
    y_true: Any, y_pred: Any, labels: list[Any], average: str | None
) -> tuple[Any, Any, Any, Any]:
    from sklearn.metrics import precision_recall_fscore_support

    # zero_division=0: a class never predicted scores 0 precision instead of a warning.
    return precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=average, zero_division=0
    )


def _per_class(y_true: Any, y_pred: Any, labels: list[Any], names: list[str]) -> dict:
    p, r, f, s = _prf(y_true, y_pred, labels, None)
    return {
        name: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, name in enumerate(names)
    }


def _averages(y_true: Any, y_pred: Any, macro_labels: list[Any], micro_labels: list[Any]) -> dict:
    out: dict[str, float] = {}
    for average, labels in (("macro", macro_labels), ("micro", micro_labels)):
        p, r, f, _ = _prf(y_true, y_pred, labels, average)
        out[f"{average}_precision"] = float(p)
        out[f"{average}_recall"] = float(r)
        out[f"{average}_f1"] = float(f)
    out["weighted_f1"] = float(_prf(y_true, y_pred, macro_labels, "weighted")[2])
    # The task-independent headline keys, see the module docstring.
    out["precision"] = out["macro_precision"]
    out["recall"] = out["macro_recall"]
    out["f1"] = out["macro_f1"]
    return out


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str], label_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro/micro/weighted P/R/F1, per-class scores and the confusion matrix.

    Args:
        y_true: Gold label of each example.
        y_pred: Predicted label of each example, same length as ``y_true``.
        label_names: The task's label set, in the order tables should show it.
            A predicted label outside it does not crash: it counts as an error in
            ``accuracy`` and the micro scores (so ``micro_f1 == accuracy``) and gets
            its own row/column in the confusion matrix, but macro and weighted averages
            run over ``label_names`` (plus any gold label missing from it) only.

    Returns:
        A dict with ``accuracy``; ``macro_``/``micro_`` ``precision``/``recall``/``f1``;
        ``weighted_f1``; ``precision``/``recall``/``f1`` (the macro values); ``support``
        (number of examples); ``per_class`` ``{label: {precision, recall, f1, support}}``;
        ``confusion_matrix`` ``{"labels": [...], "matrix": [[...]]}`` with rows = true
        and columns = predicted labels.

    Raises:
        ValueError: If the lengths differ or there are no examples.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix

    _check_lengths(y_true, y_pred)
    y_true, y_pred = [str(y) for y in y_true], [str(y) for y in y_pred]
    scored = _scored_labels(label_names, y_true)
    all_labels = scored + sorted(set(y_pred) - set(scored))

    matrix = confusion_matrix(y_true, y_pred, labels=all_labels)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        **_averages(y_true, y_pred, scored, all_labels),
        "support": len(y_true),
        "per_class": _per_class(y_true, y_pred, scored, scored),
        "confusion_matrix": {"labels": all_labels, "matrix": matrix.tolist()},
    }


def multilabel_metrics(
    y_true: Sequence[Sequence[str]],
    y_pred: Sequence[Sequence[str]],
    label_names: Sequence[str],
) -> dict[str, Any]:
    """Scores for examples that carry a set of labels each.

    Args:
        y_true: Gold label set of each example (an empty list is allowed).
        y_pred: Predicted label set of each example, same length as ``y_true``.
        label_names: The task's label set. Predicted labels outside it count as false
            positives in the micro scores and ``hamming_loss``; macro averages run over
            ``label_names`` plus any gold label missing from it (as for single-label).

    Returns:
        A dict with ``accuracy`` (subset accuracy: the whole set must match);
        ``hamming_loss`` (fraction of wrong example×label cells, over every label
        seen); ``macro_``/``micro_`` ``precision``/``recall``/``f1``; ``weighted_f1``;
        ``precision``/``recall``/``f1`` (the macro values); ``support`` (number of
        examples); ``per_class`` ``{label: {precision, recall, f1, support}}`` where
        support is the number of examples whose gold set has the label.

    Raises:
        ValueError: If the lengths differ or there are no examples.
    """
    from sklearn.metrics import accuracy_score, hamming_loss
    from sklearn.preprocessing import MultiLabelBinarizer

    _check_lengths(y_true, y_pred)
    y_true = [[str(y) for y in row] for row in y_true]
    y_pred = [[str(y) for y in row] for row in y_pred]
    scored = _scored_labels(label_names, [y for row in y_true for y in row])
    all_labels = scored + sorted({y for row in y_pred for y in row} - set(scored))

    # Fixing `classes` keeps column i == all_labels[i], so label indices are stable.
    binarizer = MultiLabelBinarizer(classes=all_labels)
    t = binarizer.fit_transform(y_true)  # (N, L) 0/1
    p = binarizer.transform(y_pred)  # (N, L) 0/1
    scored_idx = list(range(len(scored)))
    all_idx = list(range(len(all_labels)))
    return {
        "accuracy": float(accuracy_score(t, p)),
        "hamming_loss": float(hamming_loss(t, p)),
        **_averages(t, p, scored_idx, all_idx),
        "support": len(y_true),
        "per_class": _per_class(t, p, scored_idx, scored),
    }


__all__ = ["classification_metrics", "multilabel_metrics"]

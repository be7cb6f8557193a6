"""Questions the context does not answer (SQuAD 2.0): when to answer nothing, and scores.

Each window of a context proposes its best span with probability ``p_span`` and gives the
"no answer" position (CLS) a probability ``p_null``, both from one softmax over the context
tokens and CLS (see :func:`~adapterkit.tasks.question_answering.best_span`). Over an
example's windows the best span is the most probable one and ``p_null`` the *lowest*
(one window holding the answer is enough), as transformers' SQuAD 2.0 post-processing
does. The example's no-answer share is

    q = p_null / (p_null + p_span)          in [0, 1]

and the answer is empty when ``q > threshold``. The threshold is chosen after training,
on validation, as the one that maximises F1 (the official script's ``best_f1_thresh``),
and stored in the bundle; data without unanswerable questions keeps no threshold, so
every question gets a span as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapterkit.errors import AdapterkitError
from adapterkit.metrics import exact_match_f1


def no_answer_share(span: float, null: float) -> float:
    """``null / (null + span)``: how much of the two the model gives to "no answer"."""
    total = span + null
    return null / total if total > 0 else 1.0


def check_threshold(value: Any, where: str = "no_answer_threshold") -> float:
    """A threshold as a float in [0, 1], or one line saying what is wrong with it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise AdapterkitError(
            f"{where} must be a number from 0 to 1 (the no-answer share above which the "
            f"answer is empty), got {value!r}"
        )
    return float(value)


def has_unanswerable(references: Sequence[Sequence[str]]) -> bool:
    """Whether any reference is the empty answer (SQuAD 2.0's unanswerable question)."""
    return any(list(ref) == [""] for ref in references)


def best_threshold(
    references: Sequence[Sequence[str]], answers: Sequence[str], shares: Sequence[float]
) -> float:
    """The threshold that maximises mean F1 when ``answers[i]`` becomes empty for every
    ``shares[i] > threshold`` (ties: the highest threshold, which answers most often).

    Sweeps the shares from the highest down: each step empties one more answer, which
    changes that example's F1 only, so the sweep costs one F1 per example.
    """
    order = sorted(range(len(answers)), key=lambda i: -shares[i])
    kept = [exact_match_f1([answers[i]], [list(references[i])])["f1"] for i in range(len(answers))]
    empty = [float(list(references[i]) == [""]) for i in range(len(answers))]
    total = best = sum(kept)
    threshold = 1.0  # a share never exceeds 1: every question gets its span
    for rank, i in enumerate(order):
        total += empty[i] - kept[i]
        if total > best + 1e-12:
            best = total
            following = shares[order[rank + 1]] if rank + 1 < len(order) else 0.0
            threshold = (shares[i] + following) / 2  # empties 0..rank, keeps the rest
    return threshold


def breakdown(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> dict[str, Any]:
    """The official script's split of exact match and F1 into answerable (``HasAns``) and
    unanswerable (``NoAns``) questions, with their counts."""
    scores: dict[str, Any] = {}
    for name, wanted in (("HasAns", False), ("NoAns", True)):
        rows = [i for i, ref in enumerate(references) if (list(ref) == [""]) == wanted]
        scores[f"{name}_total"] = len(rows)
        if rows:
            part = exact_match_f1([predictions[i] for i in rows], [references[i] for i in rows])
            scores[f"{name}_exact"] = part["exact_match"]
            scores[f"{name}_f1"] = part["f1"]
    return scores

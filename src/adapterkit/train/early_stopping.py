"""When a validation score counts as progress, and when patience runs out.

Two rules beyond "stop after ``patience`` evaluations without a better score":

- **No stop before learning starts.** While the best score has never beaten the trivial
  predictor's (:meth:`Task.trivial_score`: 0 F1, the majority class's accuracy), evaluations
  do not count against patience. A LoRA on a small NER set sat at 0.0 F1 for its first
  epochs and was stopped there, shipping a model that found no entity; given more steps
  it learned.
- **No stop in the first steps.** Patience ends a job only from
  ``min(MIN_STEPS_BEFORE_STOPPING, half its steps)`` on: a few noisy evaluations at the
  start of a small data set's run (60 steps an epoch) say little.
- **Ties go to the validation loss.** An equal score with a clearly lower validation loss
  (by more than :data:`LOSS_TOLERANCE`, relative) is an improvement: while the metric sits
  still, at the floor or at a plateau, the checkpoint kept is the one that fits better.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_STEPS_BEFORE_STOPPING = 200
"""Optimizer steps before early stopping may end a job (or half its steps, if fewer)."""
LOSS_TOLERANCE = 1e-3
"""Relative drop of the validation loss that breaks a tie of scores."""


@dataclass(frozen=True)
class Verdict:
    """What one evaluation means for early stopping."""

    improved: bool
    """Better than the best so far: keep this checkpoint, reset patience."""
    counts: bool
    """A miss that counts against patience (never while stuck at the floor)."""
    at_floor: bool
    """The best score so far is no better than the trivial predictor's."""


def learned_nothing(
    best: float | None, floor: float | None, greater_is_better: bool = True
) -> bool:
    """Whether a run's best validation score is no better than the trivial predictor's."""
    if best is None or floor is None:
        return False
    return (best if greater_is_better else -best) <= (floor if greater_is_better else -floor)


def judge(
    score: float,
    loss: float | None,
    best: float | None,
    best_loss: float | None,
    floor: float | None,
    greater_is_better: bool = True,
) -> Verdict:
    """Judge one evaluation against the best one so far.

    Args:
        score: This evaluation's primary metric.
        loss: This evaluation's validation loss (None: no tie-break).
        best, best_loss: The best evaluation's score and loss so far (None: the first).
        floor: The trivial predictor's score (None: the metric has none).
        greater_is_better: False for metrics such as perplexity.
    """
    sign = 1.0 if greater_is_better else -1.0
    tied_but_fits_better = (
        best is not None
        and score == best
        and loss is not None
        and best_loss is not None
        and loss < best_loss * (1.0 - LOSS_TOLERANCE)
    )
    improved = best is None or sign * score > sign * best or tied_but_fits_better
    at_floor = learned_nothing(score if improved else best, floor, greater_is_better)
    return Verdict(improved=improved, counts=not improved and not at_floor, at_floor=at_floor)

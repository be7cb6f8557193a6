"""Train/validation/test splits and the checks every data set goes through."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from adapterkit.errors import DataError

T = TypeVar("T")

SEQUENCE_CLASSIFICATION = "sequence-classification"
MULTI_LABEL_CLASSIFICATION = "multi-label-classification"
TOKEN_CLASSIFICATION = "token-classification"
QUESTION_ANSWERING = "question-answering"
CAUSAL_LM = "causal-lm"
RELATION_EXTRACTION = "relation-extraction"
TASKS = (
    SEQUENCE_CLASSIFICATION,
    MULTI_LABEL_CLASSIFICATION,
    TOKEN_CLASSIFICATION,
    QUESTION_ANSWERING,
    CAUSAL_LM,
    RELATION_EXTRACTION,
)
EVAL_SPLITS = ("validation", "test")


@dataclass
class DataSplits:
    """Examples per split plus what the loader decided on the way."""

    train: list[dict]
    """Training examples (see the module docs of ``adapterkit.data`` for their keys)."""
    validation: list[dict] | None
    """Validation examples, or None when there were too few to carve any."""
    test: list[dict] | None
    """Test examples, or None when the data came without a test split."""
    task: str
    """One of :data:`TASKS`."""
    label_names: list[str] | None
    """Sorted label set of train (NER tags: sorted with "O" first); None for QA and causal-lm."""
    notes: list[str] = field(default_factory=list)
    """Log lines about decisions taken, e.g. a carved validation split."""
    source: str = ""
    """Where the data came from, for reports."""


def check_trainable(splits: DataSplits) -> None:
    """Refuse, in one line, data that a run could train on but learn nothing from or not
    evaluate: fewer than two labels (one class, or tags that are all ``O``: the trivial
    predictor scores perfectly), or no validation and no test split (one or two rows).

    Called before training, so a run on such data fails before it writes anything.
    """
    names = splits.label_names
    least = 1 if splits.task == MULTI_LABEL_CLASSIFICATION else 2
    if names is not None and len(names) < least:
        shown = ", ".join(map(repr, names)) or "none"
        fewer = "one label" if least == 2 else "no labels"
        raise DataError(
            f"the training data has {len(names)} label(s) ({shown}); {splits.task} needs at "
            f"least {least}: a model of {fewer} learns nothing"
        )
    if not splits.validation and not splits.test:
        raise DataError(
            f"{len(splits.train)} training example(s) and no validation or test split: too few "
            "to carve a validation split from; give more data or a --validation file"
        )


@dataclass
class SplitOrigin:
    """Where a split's examples came from, so errors can point at a line."""

    path: str
    """File the split was read from."""
    lines: list[int] | None = None
    """Line number of each example in ``path`` (same order), when known."""


def check_task(task: str) -> str:
    """Return ``task`` if it is a known task name, else raise DataError."""
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; expected one of: {', '.join(TASKS)}")
    return task


def example_labels(example: dict, task: str) -> list[str]:
    """The labels one example carries (empty for QA and causal-lm)."""
    if task == SEQUENCE_CLASSIFICATION:
        return [example["label"]]
    if task == MULTI_LABEL_CLASSIFICATION:
        return list(example["labels"])
    if task == TOKEN_CLASSIFICATION:
        return list(example["tags"])
    if task == RELATION_EXTRACTION:
        return [example["relation"]]
    return []


def label_names(train: Sequence[dict], task: str) -> list[str] | None:
    """Sorted label set of the training examples; None for tasks without labels.

    Tag sets put ``"O"`` first so that index 0 means "outside" in every model.
    """
    if task in (QUESTION_ANSWERING, CAUSAL_LM):
        return None
    names = sorted({lab for ex in train for lab in example_labels(ex, task)})
    if task == TOKEN_CLASSIFICATION and "O" in names:
        names.remove("O")
        names.insert(0, "O")
    return names


def split_seeded(examples: Sequence[T], fractions: Sequence[float], seed: int) -> list[list[T]]:
    """Shuffle with ``random.Random(seed)`` and cut into consecutive parts.

    Part ``i`` ends at ``round(n * sum(fractions[: i + 1]))``, so fractions that
    sum to 1 use every example exactly once and the result depends only on the
    input order, the fractions and the seed.

    Args:
        examples: Items to split; not modified.
        fractions: Share of each part, each in (0, 1], summing to at most 1.
        seed: Seed of the shuffle.

    Returns:
        One list per fraction.
    """
    if not fractions or any(f <= 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise DataError(f"split fractions must be positive and sum to at most 1, got {fractions}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    parts: list[list[T]] = []
    start, total = 0, 0.0
    for frac in fractions:
        total += frac
        end = min(len(order), round(len(order) * total))
        parts.append([examples[i] for i in order[start:end]])
        start = end
    return parts


def sample_examples(examples: list[T] | None, k: int | None, seed: int) -> list[T] | None:
    """A seeded sample of at most ``k`` examples, in their original order.

    What ``--max-eval-samples`` evaluates on, in ``train`` and ``evaluate`` alike: the
    same seed gives the same subset. ``k`` None (or not smaller than the list) keeps all.
    """
    if not examples or not k or len(examples) <= k:
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), k))
    return [examples[i] for i in keep]


def carve_validation(
    train: Sequence[dict], fraction: float = 0.1, seed: int = 0
) -> tuple[list[dict], list[dict] | None, str]:
    """Hold out a seeded share of train as validation.

    At least one example is held out when train has two or more; with fewer
    there is nothing to hold out and validation is None.

    Args:
        train: Training examples.
        fraction: Share of train to hold out, in (0, 1).
        seed: Seed of the shuffle.

    Returns:
        ``(train, validation, note)`` where ``note`` says what was done.
    """
    if not 0 < fraction < 1:
        raise DataError(f"validation fraction must be between 0 and 1, got {fraction}")
    if len(train) < 2:
        return list(train), None, "no validation split, and too few training examples to carve one"
    n_val = max(1, round(len(train) * fraction))
    rest, val = split_seeded(train, [1 - n_val / len(train), n_val / len(train)], seed)
    note = (
        f"no validation split: carved {fraction:.0%} of train (seed {seed}): "
        f"{len(rest)} train / {len(val)} validation"
    )
    return rest, val, note


def keep_labels_in_train(
    train: list[dict], evals: dict[str, list[dict] | None], task: str
) -> tuple[list[dict], dict[str, list[dict] | None], int]:
    """Move evaluation examples whose labels train lacks back into train.

    Used only after a split that adapterkit made itself (one file cut 80/10/10,
    or validation carved from train): a rare label must not end up only in an
    evaluation split by bad luck of the shuffle.

    Returns:
        ``(train, evals, moved)`` with ``moved`` the number of examples moved.
    """
    seen = {lab for ex in train for lab in example_labels(ex, task)}
    train = list(train)
    out: dict[str, list[dict] | None] = {}
    moved = 0
    for name, examples in evals.items():
        if examples is None:
            out[name] = None
            continue
        kept = []
        for ex in examples:
            labels = example_labels(ex, task)
            if all(lab in seen for lab in labels):
                kept.append(ex)
            else:
                train.append(ex)
                seen.update(labels)
                moved += 1
        out[name] = kept
    return train, out, moved


def check_not_empty(name: str, examples: Sequence[dict] | None, where: str = "") -> None:
    """Raise DataError if a split that exists holds no examples."""
    if examples is not None and len(examples) == 0:
        suffix = f" ({where})" if where else ""
        raise DataError(f"{name} split is empty{suffix}: no examples")


def validate_labels(splits: DataSplits, origins: dict[str, SplitOrigin] | None = None) -> None:
    """Check the splits are non-empty and every evaluation label occurs in train.

    A model cannot predict a label it never saw, so an evaluation label missing
    from train is a data error, not something to discover in a metric.

    Args:
        splits: The data to check.
        origins: Optional file (and line numbers) of each split, for messages.

    Raises:
        DataError: Naming the split, the label and where it occurs.
    """
    origins = origins or {}

    def where(name: str) -> str:
        return origins[name].path if name in origins else ""

    check_task(splits.task)
    check_not_empty("train", splits.train, where("train"))
    for name in EVAL_SPLITS:
        check_not_empty(name, getattr(splits, name), where(name))
    if splits.task in (QUESTION_ANSWERING, CAUSAL_LM):
        return
    seen = {lab for ex in splits.train for lab in example_labels(ex, splits.task)}
    for name in EVAL_SPLITS:
        for i, ex in enumerate(getattr(splits, name) or []):
            for lab in example_labels(ex, splits.task):
                if lab in seen:
                    continue
                origin = origins.get(name)
                if origin is None:
                    loc = ""
                elif origin.lines is not None and i < len(origin.lines) and origin.lines[i] > 0:
                    loc = f" ({origin.path}:{origin.lines[i]})"
                else:
                    loc = f" (file {origin.path})"
                known = sorted(seen)
                shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
                raise DataError(
                    f"{name} label {lab!r}{loc} never appears in the training data; "
                    f"training labels: {shown}"
                )

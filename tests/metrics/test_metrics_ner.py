"""Entity-level NER metrics (seqeval, strict IOB2 by default)."""

import pytest

from adapterkit.errors import DataError
from adapterkit.metrics import ner_metrics

GOLD = [["B-PER", "I-PER", "O", "B-LOC"]]


def test_boundary_error_scores_zero_for_that_entity():
    # 3 of 4 tokens right, but the PER span is cut short: PER is a miss and a false
    # alarm, LOC is found. Micro: 1 of 2 predicted right, 1 of 2 gold found -> 0.5.
    m = ner_metrics(GOLD, [["B-PER", "O", "O", "B-LOC"]])
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert m["per_type"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_type"]["LOC"]["f1"] == 1.0
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert m["macro_f1"] == pytest.approx(0.5)
    assert m["support"] == 2
    assert m["mode"] == "strict"


def test_perfect_prediction():
    m = ner_metrics(GOLD, GOLD)
    assert m["f1"] == m["precision"] == m["recall"] == m["accuracy"] == 1.0


def test_strict_and_lenient_differ_on_i_without_b():
    pred = [["I-PER", "I-PER", "O", "B-LOC"]]
    strict = ner_metrics(GOLD, pred)
    # Strict: "I-PER" after nothing starts no entity -> only LOC predicted: P 1, R 1/2.
    assert strict["per_type"]["PER"]["recall"] == 0.0
    assert strict["precision"] == 1.0
    assert strict["f1"] == pytest.approx(2 / 3)
    # Lenient (conlleval): the I-PER run is read as a PER entity with the same span.
    assert ner_metrics(GOLD, pred, mode="lenient")["f1"] == 1.0


def test_strict_rejects_non_iob2_tags_with_a_clear_error():
    with pytest.raises(DataError, match="E-PER"):
        ner_metrics(GOLD, [["E-PER", "I-PER", "O", "B-LOC"]])


def test_no_entities_gives_zeros_not_nan():
    m = ner_metrics([["O", "O"]], [["O", "O"]])
    assert m["f1"] == 0.0
    assert m["macro_f1"] == 0.0
    assert m["accuracy"] == 1.0
    assert m["per_type"] == {}


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="sentence 0"):
        ner_metrics(GOLD, [["O"]])
    with pytest.raises(ValueError):
        ner_metrics(GOLD, GOLD, mode="fuzzy")

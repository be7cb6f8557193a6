"""Classification metrics against numbers worked out by hand."""

import pytest

from adapterkit.metrics import classification_metrics, multilabel_metrics

# 3 classes, 6 examples. By hand:
#   a: TP 2, FP 0, FN 1 -> P 1,   R 2/3, F1 0.8
#   b: TP 1, FP 1, FN 1 -> P 1/2, R 1/2, F1 1/2
#   c: TP 1, FP 1, FN 0 -> P 1/2, R 1,   F1 2/3
#   macro F1 = (0.8 + 0.5 + 2/3) / 3 = 0.65556; accuracy = 4/6
#   weighted F1 = (3*0.8 + 2*0.5 + 1*2/3) / 6 = 0.67778
Y_TRUE = ["a", "a", "a", "b", "b", "c"]
Y_PRED = ["a", "a", "b", "b", "c", "c"]
LABELS = ["a", "b", "c"]


def test_three_class_exact_numbers():
    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["macro_f1"] == pytest.approx(0.655556, abs=1e-6)
    assert m["macro_precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)
    # Single-label: every error is one FP and one FN, so micro P = R = F1 = accuracy.
    for key in ("micro_f1", "micro_precision", "micro_recall"):
        assert m[key] == pytest.approx(4 / 6)
    # The task-wide keys are the macro ones.
    assert (m["precision"], m["recall"], m["f1"]) == (
        m["macro_precision"],
        m["macro_recall"],
        m["macro_f1"],
    )
    assert m["support"] == 6
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    assert m["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == {
        "labels": ["a", "b", "c"],
        "matrix": [[2, 1, 0], [0, 1, 1], [0, 0, 1]],  # rows true, columns predicted
    }


def test_values_are_plain_python_numbers():
    m = classification_metrics(Y_TRUE, Y_PRED, LABELS)
    assert all(type(m[k]) is float for k in ("accuracy", "f1", "micro_f1", "weighted_f1"))
    assert type(m["per_class"]["a"]["support"]) is int
    assert all(0.0 <= m[k] <= 1.0 for k in ("accuracy", "f1", "precision", "recall"))


def test_prediction_outside_label_names_counts_as_error_without_crashing():
    m = classification_metrics(["a", "b", "c"], ["a", "zzz", "c"], LABELS)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["micro_f1"] == pytest.approx(2 / 3)
    assert set(m["per_class"]) == {"a", "b", "c"}  # macro runs over the real classes
    assert m["macro_f1"] == pytest.approx((1 + 0 + 1) / 3)
    cm = m["confusion_matrix"]
    assert cm["labels"] == ["a", "b", "c", "zzz"]
    assert cm["matrix"][1] == [0, 0, 0, 1]


def test_gold_label_outside_label_names_is_scored():
    m = classification_metrics(["a", "new"], ["a", "a"], ["a"])
    assert m["per_class"]["new"]["support"] == 1
    assert m["per_class"]["new"]["recall"] == 0.0


@pytest.mark.parametrize(("t", "p"), [([], []), (["a"], ["a", "b"])])
def test_bad_lengths_raise(t, p):
    with pytest.raises(ValueError):
        classification_metrics(t, p, LABELS)


def test_multilabel_exact_numbers():
    # Subset accuracy: only row 0 matches exactly -> 1/3.
    # Hamming: 3 rows x 3 labels = 9 cells; wrong: extra "a" in row 1, missing "a"
    # in row 2 -> 2/9. Micro: TP 3, 4 predicted, 4 gold -> P = R = F1 = 3/4.
    # Per class: a P 1/2 R 1/2 F1 1/2; b and c perfect -> macro F1 = 2.5/3.
    y_true = [["a", "b"], ["c"], ["a"]]
    y_pred = [["a", "b"], ["c", "a"], []]
    m = multilabel_metrics(y_true, y_pred, LABELS)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["hamming_loss"] == pytest.approx(2 / 9)
    assert m["micro_f1"] == pytest.approx(0.75)
    assert m["micro_precision"] == pytest.approx(0.75)
    assert m["macro_f1"] == pytest.approx(2.5 / 3)
    assert m["f1"] == m["macro_f1"]
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert m["support"] == 3


def test_multilabel_unknown_predicted_label_is_a_false_positive():
    m = multilabel_metrics([["a"]], [["a", "zzz"]], LABELS)
    assert m["accuracy"] == 0.0
    assert m["micro_precision"] == pytest.approx(0.5)
    assert m["micro_recall"] == 1.0
    assert "zzz" not in m["per_class"]

"""Generation metrics: ROUGE, BLEU/chrF, SQuAD EM/F1, perplexity."""

import math

import pytest

from adapterkit.metrics import (
    bleu_chrf,
    exact_match_f1,
    normalize_answer,
    perplexity,
    rouge_scores,
)

SENTS = ["the cat sat on the mat today", "a quick brown fox jumps over it"]
# No word and not even a character shared with SENTS, so chrF is 0 too.
DISJOINT = ["zzz ggg lll zz", "gl lz zg lll"]


def test_rouge_identical_is_one_and_disjoint_is_zero():
    pytest.importorskip("rouge_score")
    assert rouge_scores(SENTS, SENTS) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    assert rouge_scores(DISJOINT, SENTS) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_rouge_partial_overlap():
    pytest.importorskip("rouge_score")
    # 2 of 3 unigrams shared both ways -> ROUGE-1 F = 2/3; bigram "the cat" only -> 1/2.
    s = rouge_scores(["the cat ran"], ["the cat sat"])
    assert s["rouge1"] == pytest.approx(2 / 3)
    assert s["rouge2"] == pytest.approx(1 / 2)


def test_bleu_chrf_on_0_100_scale():
    pytest.importorskip("sacrebleu")
    assert bleu_chrf(SENTS, SENTS) == {"bleu": 100.0, "chrf": 100.0}
    disjoint = bleu_chrf(DISJOINT, SENTS)
    assert disjoint == {"bleu": 0.0, "chrf": 0.0}


def test_squad_normalisation_and_scores():
    assert normalize_answer("  The  Eiffel-Tower!! ") == "eiffeltower"
    assert normalize_answer("An apple, a pear") == "apple pear"
    # Example 1: exact after normalisation. Example 2: pred "big red house" vs "red
    # house": overlap 2, P 2/3, R 1 -> F1 0.8, EM 0. Mean EM 1/2, mean F1 0.9.
    s = exact_match_f1(["The Cat!", "big red house"], ["a cat", "red house"])
    assert s == pytest.approx({"exact_match": 0.5, "f1": 0.9})


def test_exact_match_takes_best_reference():
    assert exact_match_f1(["Paris"], [["London", "paris."]]) == {"exact_match": 1.0, "f1": 1.0}
    assert exact_match_f1([""], [""]) == {"exact_match": 1.0, "f1": 1.0}
    assert exact_match_f1(["x"], [""])["f1"] == 0.0


def test_perplexity():
    assert perplexity(0.0, 10) == 1.0
    assert perplexity(10 * math.log(4), 10) == pytest.approx(4.0)
    assert perplexity(1e6, 1) == math.inf
    with pytest.raises(ValueError):
        perplexity(1.0, 0)


def test_mismatched_or_empty_inputs_raise():
    with pytest.raises(ValueError):
        exact_match_f1(["a"], ["a", "b"])
    with pytest.raises(ValueError):
        exact_match_f1([], [])

"""Metrics for generated text: ROUGE, BLEU/chrF, SQuAD exact match/F1, perplexity.

Scales differ on purpose, each following the convention its numbers are quoted in:
ROUGE, exact match and F1 are fractions in [0, 1]; BLEU and chrF are on sacrebleu's
0-100 scale, as papers and leaderboards report them.

sacrebleu and rouge-score are imported inside the functions that use them, so the
rest of adapterkit works on an install that does not have them.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from statistics import fmean


def _check_pairs(preds: Sequence[object], refs: Sequence[object]) -> None:
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
    if len(preds) == 0:
        raise ValueError("cannot score zero predictions")


def rouge_scores(preds: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measure over prediction/reference pairs.

    Uses Google's ``rouge-score`` with the Porter stemmer (as most summarisation
    papers do). Its tokenizer keeps only ASCII letters and digits, so text in other
    scripts scores near zero: use :func:`bleu_chrf` (chrF) for such languages.

    Args:
        preds: Generated texts.
        refs: One reference text per prediction.

    Returns:
        ``{"rouge1", "rouge2", "rougeL"}``, each a float in [0, 1]. ``rougeL`` is
        sentence-level LCS (not the newline-split ``rougeLsum``).

    Raises:
        ValueError: If the lengths differ or there are no predictions.
    """
    from rouge_score import rouge_scorer

    _check_pairs(preds, refs)
    keys = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(keys), use_stemmer=True)
    # rouge-score's signature is score(target, prediction): reference first.
    scores = [scorer.score(ref, pred) for pred, ref in zip(preds, refs, strict=True)]
    return {k: fmean(s[k].fmeasure for s in scores) for k in keys}


def bleu_chrf(preds: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Corpus-level BLEU and chrF with sacrebleu's default settings.

    Corpus level means n-gram counts are summed over all pairs before the score
    is formed (not an average of sentence scores), which is what sacrebleu and
    published results report. BLEU needs 4-gram matches: pairs shorter than four
    tokens score 0 BLEU even when identical; chrF (character n-grams) does not
    have that problem and is the better signal for short outputs.

    Args:
        preds: Generated texts.
        refs: One reference text per prediction.

    Returns:
        ``{"bleu", "chrf"}`` on sacrebleu's **0-100 scale** (not 0-1).

    Raises:
        ValueError: If the lengths differ or there are no predictions.
    """
    import sacrebleu

    _check_pairs(preds, refs)
    preds, ref_streams = list(preds), [list(refs)]  # sacrebleu: one list per reference set
    bleu = sacrebleu.corpus_bleu(preds, ref_streams).score
    chrf = sacrebleu.corpus_chrf(preds, ref_streams).score
    # Clamp float noise (100.00000000000004 for identical text) to the documented range.
    return {"bleu": min(float(bleu), 100.0), "chrf": min(float(chrf), 100.0)}


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lowercase, drop punctuation, articles, extra spaces.

    Args:
        text: An answer string.

    Returns:
        The normalised string, tokens joined by single spaces.
    """
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _token_f1(pred: str, ref: str) -> float:
    pred_tokens, ref_tokens = normalize_answer(pred).split(), normalize_answer(ref).split()
    if not pred_tokens or not ref_tokens:
        # SQuAD 2.0 rule: an empty answer is right only when the reference is empty too.
        return float(pred_tokens == ref_tokens)
    overlap = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match_f1(preds: Sequence[str], refs: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """SQuAD-style exact match and token-overlap F1, averaged over examples.

    Both compare :func:`normalize_answer` forms. When an example has several
    acceptable references, it gets its best score against any of them (as in
    the official SQuAD script).

    Args:
        preds: Predicted answers.
        refs: Per prediction, one reference string or a list of acceptable ones.

    Returns:
        ``{"exact_match", "f1"}``, each a float in [0, 1] (not SQuAD's 0-100).

    Raises:
        ValueError: If the lengths differ, there are no predictions, or an example
            has an empty list of references.
    """
    _check_pairs(preds, refs)
    ems, f1s = [], []
    for i, (pred, ref) in enumerate(zip(preds, refs, strict=True)):
        candidates = [ref] if isinstance(ref, str) else list(ref)
        if not candidates:
            raise ValueError(f"example {i} has no reference answers")
        norm_pred = normalize_answer(pred)
        ems.append(max(float(norm_pred == normalize_answer(c)) for c in candidates))
        f1s.append(max(_token_f1(pred, c) for c in candidates))
    return {"exact_match": fmean(ems), "f1": fmean(f1s)}


def perplexity(total_nll: float, n_tokens: int) -> float:
    """Perplexity from a summed negative log-likelihood: ``exp(total_nll / n_tokens)``.

    Pass the *sum* of per-token NLLs (natural log) and the number of scored tokens,
    accumulated over all batches; averaging per-batch perplexities instead would
    weight short batches wrongly.

    Args:
        total_nll: Sum of token negative log-likelihoods, in nats.
        n_tokens: Number of tokens the sum runs over (padding and prompt excluded).

    Returns:
        The perplexity (>= 1), or ``inf`` if it overflows a float.

    Raises:
        ValueError: If ``n_tokens`` is not positive or ``total_nll`` is negative.
    """
    if n_tokens <= 0:
        raise ValueError(f"n_tokens must be positive, got {n_tokens}")
    if total_nll < 0:
        raise ValueError(f"total_nll is a sum of negative log-probs, >= 0; got {total_nll}")
    try:
        return math.exp(total_nll / n_tokens)
    except OverflowError:
        return math.inf


__all__ = ["bleu_chrf", "exact_match_f1", "normalize_answer", "perplexity", "rouge_scores"]

"""Evaluation metrics and run reports.

Metric functions return plain dicts of Python floats (fractions in [0, 1], except
BLEU/chrF on sacrebleu's 0-100 scale and perplexity); every task's dict has
``precision``/``recall``/``f1`` or its own headline keys at the top level.
:func:`write_metrics` turns such a dict into ``metrics.json`` + ``report.md``;
:func:`plot_curves` draws the training history.
"""

from adapterkit.metrics.classification import classification_metrics, multilabel_metrics
from adapterkit.metrics.generation import (
    bleu_chrf,
    exact_match_f1,
    normalize_answer,
    perplexity,
    rouge_scores,
)
from adapterkit.metrics.ner import NerMode, ner_metrics
from adapterkit.metrics.plots import plot_curves
from adapterkit.metrics.report import format_summary, headline_metrics, render_report, write_metrics

__all__ = [
    "NerMode",
    "bleu_chrf",
    "classification_metrics",
    "exact_match_f1",
    "format_summary",
    "headline_metrics",
    "multilabel_metrics",
    "ner_metrics",
    "normalize_answer",
    "perplexity",
    "plot_curves",
    "render_report",
    "rouge_scores",
    "write_metrics",
]

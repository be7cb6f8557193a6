"""Write a run's evaluation to disk (``metrics.json`` + ``report.md``) and summarise it.

``metrics.json`` is for machines (comparisons, benchmarks, CI); ``report.md`` is for
people and renders on GitHub. Both take the dicts that ``classification_metrics``,
``ner_metrics`` and the generation metrics return, unchanged.
"""

from __future__ import annotations

import html
import json
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adapterkit.files import atomic_write_bytes
from adapterkit.metrics._io import to_jsonable

# Shown first, in this order, when present; other numeric top-level values follow.
HEADLINE_KEYS: tuple[str, ...] = (
    "accuracy",
    "f1",
    "precision",
    "recall",
    "macro_f1",
    "micro_f1",
    "weighted_f1",
    "exact_match",
    "rouge1",
    "rouge2",
    "rougeL",
    "bleu",
    "chrf",
    "perplexity",
    "hamming_loss",
    "loss",
)
MAX_MATRIX_CLASSES = 20  # a wider matrix does not fit on a screen; it stays in the JSON
MAX_SAMPLE_ROWS = 20
MAX_CELL_CHARS = 300
# The summary printed to the terminal stays a glance, not a table.
_SUMMARY_KEYS = frozenset(HEADLINE_KEYS) - {"macro_f1", "micro_f1", "weighted_f1"}
_SUMMARY_LINES = 6


def _is_number(value: Any) -> bool:
    # numbers.Real also covers numpy scalars, which callers may pass unconverted.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return f"{float(value):.4f}"
    return str(value)


def _cell(value: Any) -> str:
    # Model outputs may hold '|', newlines or HTML, any of which would break the table.
    text = _fmt(value)
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 1] + "…"
    text = html.escape(text, quote=False).replace("|", "\\|")
    return text.replace("\r\n", "<br>").replace("\n", "<br>")


def _table(header: list[str], rows: list[list[Any]], align: str = "---:") -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join(["---"] + [align] * (len(header) - 1)) + "|")
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def headline_metrics(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    """The numeric top-level values of a metrics dict, most important first.

    Args:
        metrics: A dict returned by one of the metric functions (or several merged).

    Returns:
        ``{name: value}`` ordered by :data:`HEADLINE_KEYS`, then the remaining
        numbers in their original order; ``support`` is left out (it is a count).
    """
    numbers = {k: v for k, v in metrics.items() if _is_number(v) and k != "support"}
    first = {k: numbers[k] for k in HEADLINE_KEYS if k in numbers}
    return first | {k: v for k, v in numbers.items() if k not in first}


def _per_label_section(metrics: Mapping[str, Any]) -> list[str]:
    for key, heading, column in (
        ("per_class", "Per class", "label"),
        ("per_type", "Per entity type", "type"),
    ):
        table = metrics.get(key)
        if isinstance(table, Mapping) and table:
            cols = ["precision", "recall", "f1", "support"]
            rows = [[name, *(scores.get(c, "") for c in cols)] for name, scores in table.items()]
            return [f"## {heading}", "", *_table([column, *cols], rows)]
    return []


def _confusion_section(metrics: Mapping[str, Any]) -> list[str]:
    cm = metrics.get("confusion_matrix")
    if not isinstance(cm, Mapping) or "labels" not in cm or "matrix" not in cm:
        return []
    labels, matrix = list(cm["labels"]), cm["matrix"]
    lines = ["## Confusion matrix", ""]
    if len(labels) > MAX_MATRIX_CLASSES:
        note = f"{len(labels)} classes: too many to show here; the matrix is in the JSON file."
        return [*lines, note, ""]
    lines += ["Rows are true labels, columns predicted labels.", ""]
    rows = [[label, *counts] for label, counts in zip(labels, matrix, strict=True)]
    return lines + _table(["true \\ predicted", *labels], rows)


def _samples_section(metrics: Mapping[str, Any]) -> list[str]:
    samples = metrics.get("samples")
    if not samples:
        return []
    shown = list(samples)[:MAX_SAMPLE_ROWS]
    rows = [
        [i + 1, s.get("input", ""), s.get("prediction", ""), s.get("reference", "")]
        for i, s in enumerate(shown)
    ]
    lines = [
        "## Sample generations",
        "",
        *_table(["#", "input", "prediction", "reference"], rows, "---"),
    ]
    if len(samples) > len(shown):
        lines += [f"First {len(shown)} of {len(samples)} samples; all are in the JSON file.", ""]
    return lines


def render_report(
    metrics: Mapping[str, Any], *, title: str, details: Mapping[str, Any] | None = None
) -> str:
    """Render a metrics dict as a markdown report.

    Args:
        metrics: A dict from a metric function.
        title: The report's heading.
        details: Run details (split, method, sizes, timings) shown in their own
            table, apart from the metrics; string values of ``metrics`` (such as
            NER's ``mode``) join them there.

    Returns:
        The markdown text: headline numbers, run details, per-class or per-type
        table, confusion matrix (at most :data:`MAX_MATRIX_CLASSES` classes) and
        sample generations.
    """
    lines = [f"# {title}", ""]
    details = dict(details or {})
    warning = details.pop("warning", None)
    if warning:  # the first thing a reader sees
        lines += [f"**Warning: {warning}.**", ""]
    if "support" in metrics and _is_number(metrics["support"]):
        lines += [f"{_fmt(metrics['support'])} examples evaluated.", ""]
    headline = headline_metrics(metrics)
    if headline:
        lines += _table(["metric", "value"], [[k, v] for k, v in headline.items()])
    run = details | {k: v for k, v in metrics.items() if isinstance(v, str | bool)}
    if run:
        lines += ["## Run", "", *_table(["key", "value"], [[k, v] for k, v in run.items()], "---")]
    lines += _per_label_section(metrics) + _confusion_section(metrics) + _samples_section(metrics)
    return "\n".join(lines).rstrip() + "\n"


def write_metrics(
    run_dir: Path,
    metrics: Mapping[str, Any],
    *,
    split: str,
    title: str,
    extra: Mapping[str, Any] | None = None,
    stem: str | None = None,
) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``report.md`` for one evaluated split, atomically.

    Args:
        run_dir: The run directory; created if missing.
        metrics: A dict from a metric function (several may be merged by the caller).
        split: The split evaluated (``"test"``, ``"validation"``, ...); stored as
            the ``split`` key.
        title: Heading of the markdown report.
        extra: Run details to store beside the metrics at the top level, e.g.
            ``method``, ``trainable_percent``, ``bundle_bytes``, ``train_seconds``.
        stem: Prefix for the file names, so several splits share one run dir:
            ``None`` (the main evaluation) writes ``metrics.json``/``report.md``,
            ``"validation"`` writes ``validation_metrics.json``/``validation_report.md``.

    Returns:
        The paths of the JSON file and of the markdown file.

    Raises:
        ValueError: If a key of ``extra`` (or ``split``) would overwrite a metric
            with a different value.
    """
    details = {"split": split, **(extra or {})}
    for key, value in details.items():
        if key in metrics and metrics[key] != value:
            raise ValueError(f"{key!r} is both a metric ({metrics[key]!r}) and given as {value!r}")
    metrics_only = {k: v for k, v in metrics.items() if k not in details}

    prefix = f"{stem}_" if stem else ""
    run_dir = Path(run_dir)
    json_path = run_dir / f"{prefix}metrics.json"
    md_path = run_dir / f"{prefix}report.md"
    payload = to_jsonable(metrics_only | details)
    text = json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_bytes(json_path, text.encode("utf-8"))
    # Rendered from the unconverted values so an infinite perplexity reads "inf", not "None".
    report = render_report(metrics_only, title=title, details=details)
    atomic_write_bytes(md_path, report.encode("utf-8"))
    return json_path, md_path


def format_summary(metrics: Mapping[str, Any]) -> str:
    """A few lines to print to the terminal after an evaluation.

    Args:
        metrics: A metrics dict (with or without ``split``).

    Returns:
        The task-wide headline metrics present (accuracy, precision/recall/f1,
        ROUGE, BLEU, ...; else the first six numbers), one per line with aligned
        values, after the split and before the weakest class or entity type.
    """
    lines = []
    if isinstance(metrics.get("split"), str):
        lines.append(f"split: {metrics['split']}")
    numbers = headline_metrics(metrics)
    # Only the task-wide keys (not the macro_/micro_ families, which repeat them):
    # the terminal gets a glance, metrics.json has the rest.
    headline = [(k, v) for k, v in numbers.items() if k in _SUMMARY_KEYS]
    headline = headline or list(numbers.items())[:_SUMMARY_LINES]
    width = max((len(k) for k, _ in headline), default=0)
    lines += [f"{k:<{width}}  {_fmt(v)}" for k, v in headline]
    per_label = metrics.get("per_class") or metrics.get("per_type")
    if isinstance(per_label, Mapping) and len(per_label) > 1:
        # The weakest class is what a user looks at next, so name it here.
        name, scores = min(per_label.items(), key=lambda item: item[1].get("f1", 0.0))
        lines.append(f"lowest f1: {name} ({_fmt(float(scores.get('f1', 0.0)))})")
    return "\n".join(lines)


__all__ = ["format_summary", "headline_metrics", "render_report", "write_metrics"]

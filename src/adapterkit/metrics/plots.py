"""Training curves as one PNG: losses on the left, evaluation metrics on the right.

A run's plot draws the training loss every few steps, the validation loss per epoch,
the primary metric (with precision and recall when the task has them) on an axis of
its own, and a line at the best epoch: the picture a user checks before shipping.
"""

from __future__ import annotations

import io
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from adapterkit.files import atomic_write_bytes

# Logged numbers that are bookkeeping, not quality: never drawn as metrics.
_NOT_METRICS = {"epoch", "step", "learning_rate", "lr", "grad_norm"}
# Counts (support: ~150 examples) would squash every metric in [0, 1] onto the bottom line.
_NOT_METRIC_PARTS = ("runtime", "per_second", "flos", "seconds", "support", "samples", "count")
_BESIDE_PRIMARY = ("eval_precision", "eval_recall")
_MARKER_MAX_POINTS = 50  # beyond this, markers hide the line


def _is_value(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _series(
    history: Sequence[Mapping[str, Any]], key: str, x_key: str | None
) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for i, row in enumerate(history):
        # Trainer logs interleave train rows and eval rows; each series takes only
        # the rows that carry it.
        if not _is_value(row.get(key)):
            continue
        x = i if x_key is None else row.get(x_key)
        if x_key is not None and not _is_value(x):
            continue
        xs.append(float(x))
        ys.append(float(row[key]))
    return xs, ys


def _split_keys(history: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    keys = list(dict.fromkeys(k for row in history for k, v in row.items() if _is_value(v)))
    losses = [k for k in keys if k.endswith("loss")]
    metrics = [
        k
        for k in keys
        if k not in losses
        and k not in _NOT_METRICS
        and not any(part in k for part in _NOT_METRIC_PARTS)
    ]
    return losses, metrics


def _draw(
    ax: Any, history: Sequence[Mapping[str, Any]], keys: list[str], x_key: str | None
) -> None:
    drawn = False
    for key in keys:
        xs, ys = _series(history, key, x_key)
        if xs:
            marker = "o" if len(xs) <= _MARKER_MAX_POINTS else None
            ax.plot(xs, ys, marker=marker, markersize=3, label=key)
            drawn = True
    if drawn or ax.lines:  # lines drawn before (the logged-step loss) count too
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    else:
        ax.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(x_key or "log row")


def plot_curves(
    history: Sequence[Mapping[str, Any]],
    out_path: Path,
    *,
    title: str = "",
    primary: str | None = None,
    step_losses: Sequence[Sequence[float]] | None = None,
    best_epoch: int | None = None,
) -> Path:
    """Draw loss curves and evaluation metrics of a training run into one PNG.

    Keys vary between runs, so they are sorted by name: every numeric key ending in
    ``loss`` goes to the left panel; the other numeric keys (``eval_accuracy``,
    ``eval_f1``, ...) go to the right, except bookkeeping such as ``epoch``,
    ``learning_rate``, ``grad_norm``, runtimes and counts (``eval_support``). The x axis
    is ``step`` when the rows have it, else ``epoch``, else the row number. Non-finite
    values are skipped.

    Args:
        history: Logged rows, e.g. ``{"epoch": 1.0, "step": 120, "train_loss": 0.8,
            "eval_loss": 0.6, "eval_accuracy": 0.91}``.
        out_path: Where to write the PNG; parent folders are created.
        title: Optional figure title (e.g. the run name).
        primary: The metric that picks the best epoch (``eval_f1``): the right panel then
            draws it alone, with precision and recall beside it when logged, on a 0-1
            axis when its values lie there.
        step_losses: ``[step, training loss]`` pairs logged every few steps, drawn as the
            training loss instead of one point per epoch.
        best_epoch: The epoch whose checkpoint was kept: a dashed line marks it.

    Returns:
        ``out_path``.

    Raises:
        ValueError: If ``history`` is empty.
    """
    if not history:
        raise ValueError("history is empty: nothing to plot")
    # Figure + the Agg canvas directly, not pyplot: no display is needed, and no
    # process-wide backend or "current figure" state is touched (safe in threads).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x_key = next((k for k in ("step", "epoch") if any(_is_value(r.get(k)) for r in history)), None)
    losses, metrics = _split_keys(history)
    if primary is not None and primary in metrics:
        metrics = [primary, *(k for k in _BESIDE_PRIMARY if k in metrics and k != primary)]

    fig = Figure(figsize=(11, 4), layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, metric_ax = fig.subplots(1, 2)
    if step_losses and x_key == "step":
        steps, values = zip(*step_losses, strict=True)
        loss_ax.plot(steps, values, linewidth=1, alpha=0.7, label="train loss (logged steps)")
        losses = [k for k in losses if k != "train_loss"]  # the per-epoch mean, now redundant
    _draw(loss_ax, history, losses, x_key)
    loss_ax.set_title("loss")
    _draw(metric_ax, history, metrics, x_key)
    values = [v for key in metrics for v in _series(history, key, x_key)[1]]
    if values and min(values) >= 0.0 and max(values) <= 1.0:
        metric_ax.set_ylim(-0.02, 1.02)
    metric_ax.set_title("validation" if primary else "evaluation metrics")
    best_x = next(
        (row.get(x_key or "epoch") for row in history if row.get("epoch") == best_epoch), None
    )
    if best_epoch is not None and _is_value(best_x):
        for ax in (loss_ax, metric_ax):
            ax.axvline(float(best_x), color="grey", linestyle="--", linewidth=1)
        metric_ax.annotate(
            f"best: epoch {best_epoch}", (float(best_x), 1.0), xycoords=("data", "axes fraction"),
            xytext=(-3, -12), textcoords="offset points", fontsize="small", color="grey",
            ha="right",
        )  # fmt: skip
    if title:
        fig.suptitle(title)

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(Path(out_path), buffer.getvalue())


__all__ = ["plot_curves"]

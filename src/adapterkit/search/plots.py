"""A search's pictures: the score of each trial, the score against each parameter, and
Optuna's parameter importances (``<output>/plots/*.png``)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from adapterkit.files import atomic_write_bytes


def _figure(width: float, height: float) -> Any:
    # A Figure with its own Agg canvas: no pyplot, so no process-wide state is touched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_search(study: Any, metric: str, out: Path) -> list[Path]:
    """Write the plots of ``study`` into ``out``; the paths written (none before 2 trials)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.value is not None]
    if len(done) < 2:
        return []
    out.mkdir(parents=True, exist_ok=True)
    maximize = study.direction.name == "MAXIMIZE"
    written = [_by_trial(done, metric, maximize, out / "score_by_trial.png")]
    names = sorted({k for t in done for k in t.user_attrs.get("options", {})})
    if names:
        written.append(_by_parameter(done, names, metric, out / "score_by_parameter.png"))
    importance = _importances(study, out / "importances.png")
    if importance is not None:
        written.append(importance)
    return written


def _finished(trial: Any) -> bool:
    """Whether a trial ran to its end (a pruned one's value is its last epoch's score)."""
    return trial.state.name == "COMPLETE"


_PRUNED = {"facecolors": "none", "edgecolors": "grey", "label": "pruned (score when pruned)"}


def _scatter(ax: Any, points: list[tuple[Any, float, bool]]) -> None:
    """Finished trials as dots, pruned ones as grey rings (their last epoch's score)."""
    for finished, style in ((True, {"label": "finished"}), (False, _PRUNED)):
        chosen = [(x, y) for x, y, done in points if done == finished]
        if chosen:
            ax.scatter([x for x, _ in chosen], [y for _, y in chosen], **style)


def _by_trial(done: list[Any], metric: str, maximize: bool, path: Path) -> Path:
    fig = _figure(7, 4)
    ax = fig.subplots()
    _scatter(ax, [(t.number, t.value, _finished(t)) for t in done])
    numbers, best, running = [], [], None
    for t in done:
        if not _finished(t):
            continue
        better = running is None or (t.value > running if maximize else t.value < running)
        running = t.value if better else running
        numbers.append(t.number)
        best.append(running)
    if numbers:
        if numbers[-1] != done[-1].number:  # the line runs on over the trials pruned since
            numbers, best = [*numbers, done[-1].number], [*best, best[-1]]
        ax.step(numbers, best, where="post", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {metric}")
    ax.legend()
    return _save(fig, path)


def _by_parameter(done: list[Any], names: list[str], metric: str, path: Path) -> Path:
    fig = _figure(4 * len(names), 3.5)
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        points = [
            (t.user_attrs["options"][name], t.value, _finished(t))
            for t in done
            if name in t.user_attrs["options"]
        ]
        xs = [x for x, _, _ in points]
        if xs and all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs):
            _scatter(ax, points)
            if name == "lr" or (min(xs) > 0 and max(xs) / min(xs) > 50):
                ax.set_xscale("log")
        else:  # categories side by side
            labels = sorted({str(x) for x in xs})
            _scatter(ax, [(labels.index(str(x)), y, f) for x, y, f in points])
            ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(name)
        ax.set_ylabel(f"validation {metric}")
    return _save(fig, path)


def _importances(study: Any, path: Path) -> Path | None:
    """Optuna's parameter importances, when the finished trials allow computing them."""
    import optuna

    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):  # too few trials, one value each
        return None
    if not importances:
        return None
    fig = _figure(6, 0.5 + 0.4 * len(importances))
    ax = fig.subplots()
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance (Optuna's default evaluator)")
    return _save(fig, path)

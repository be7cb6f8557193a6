"""Training-curve plot."""

import pytest

from adapterkit.metrics import plot_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_non_empty_png(tmp_path):
    history = [
        {"epoch": 0.5, "step": 10, "train_loss": 1.1, "learning_rate": 1e-4},
        {"epoch": 1.0, "step": 20, "train_loss": 0.8},
        {"epoch": 1.0, "step": 20, "eval_loss": 0.7, "eval_accuracy": 0.6, "eval_runtime": 2.0},
        {"epoch": 2.0, "step": 40, "train_loss": 0.5},
        {"epoch": 2.0, "step": 40, "eval_loss": 0.6, "eval_accuracy": 0.9, "eval_f1": 0.85},
    ]
    out = plot_curves(history, tmp_path / "plots" / "curves.png")
    assert out == tmp_path / "plots" / "curves.png"
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 5_000
    # Atomic write leaves no temp file behind.
    assert [p.name for p in out.parent.iterdir()] == ["curves.png"]


def test_plot_without_eval_rows_or_step(tmp_path):
    out = plot_curves([{"loss": 1.0}, {"loss": 0.5}], tmp_path / "c.png")
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_empty_history_raises(tmp_path):
    with pytest.raises(ValueError):
        plot_curves([], tmp_path / "c.png")


def test_run_plot_draws_the_primary_metric_on_its_own_axis(tmp_path):
    """A count (eval_support ~150) used to share the axis with metrics in [0, 1], flattening
    them all onto the bottom line; the run's plot now draws the primary metric, precision
    and recall on a 0-1 axis, the training loss per logged step and the best epoch."""
    from matplotlib.figure import Figure

    history = [
        {"epoch": 1, "step": 60, "train_loss": 0.9, "eval_loss": 0.7, "eval_f1": 0.0,
         "eval_precision": 0.0, "eval_recall": 0.0, "eval_support": 151, "eval_accuracy": 0.9},
        {"epoch": 2, "step": 120, "train_loss": 0.5, "eval_loss": 0.5, "eval_f1": 0.4,
         "eval_precision": 0.5, "eval_recall": 0.33, "eval_support": 151, "eval_accuracy": 0.93},
    ]  # fmt: skip
    drawn: dict[str, list] = {}
    original = Figure.savefig

    def capture(figure, *args, **kwargs):
        for ax in figure.axes:
            drawn[ax.get_title()] = [
                (line.get_label(), ax.get_ylim()) for line in ax.lines if line.get_label()[0] != "_"
            ]
        return original(figure, *args, **kwargs)

    Figure.savefig = capture
    try:
        plot_curves(
            history,
            tmp_path / "c.png",
            primary="eval_f1",
            step_losses=[[20, 1.2], [40, 1.0], [60, 0.9], [80, 0.7], [100, 0.6], [120, 0.5]],
            best_epoch=2,
        )
    finally:
        Figure.savefig = original
    metric_lines = drawn["validation"]
    assert [label for label, _ in metric_lines] == ["eval_f1", "eval_precision", "eval_recall"]
    assert metric_lines[0][1][1] <= 1.05  # a 0-1 axis, not one stretched to 151
    assert [label for label, _ in drawn["loss"]] == ["train loss (logged steps)", "eval_loss"]

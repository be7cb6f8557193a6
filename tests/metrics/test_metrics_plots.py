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

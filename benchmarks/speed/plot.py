"""The scaling plot of the speed benchmark (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_scaling(scaling: dict[str, Any], path: Path) -> None:
    """Two panels: ms per 1k tokens against sequence length; step ms against adapted layers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    points = scaling["scaling"]
    colours = {
        "full": "tab:gray",
        "houlsby": "tab:green",
        "pfeiffer": "tab:blue",
        "lora": "tab:orange",
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    lengths = [p for p in points if p["curve"] == "length"]
    for method in sorted({p["method"] for p in lengths}):
        row = [p for p in lengths if p["method"] == method]
        x, y = [p["length"] for p in row], [1e6 / p["tokens_per_s"] for p in row]
        left.plot(x, y, "o-", label=method, color=colours.get(method))
    left.set(xscale="log", xlabel="sequence length (tokens)", ylabel="ms per 1k tokens")
    left.set_title("Training cost per token vs length")
    left.set_xticks(sorted({p["length"] for p in lengths}))
    left.xaxis.set_major_formatter(ScalarFormatter())
    left.xaxis.set_minor_formatter(NullFormatter())
    layers = [p for p in points if p["curve"] == "layers"]
    for method in sorted({p["method"] for p in layers}):
        row = [p for p in layers if p["method"] == method]
        x, y = [p["layers"] for p in row], [p["step_ms"] for p in row]
        right.plot(x, y, "o-", label=method, color=colours.get(method))
    right.set(xlabel=f"adapted layers (the top k of {scaling['num_layers']})", ylabel="step ms")
    right.set_title("Training step time vs adapted layers")
    right.set_xticks(sorted({p["layers"] for p in layers}))
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

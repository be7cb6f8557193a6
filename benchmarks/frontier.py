"""Quality against trainable parameters: the frontier a user looks at to choose a method.

Reads the runs recorded in docs/results_sweep.json (``python -m benchmarks.quality_sweep``:
every method at its default size, 3 seeds, with ``--set methods``; a smaller and a larger
size of each, seed 0, with ``--set frontier``) and draws, per task, each method's sizes as
one line of test-score medians over seeds against trainable %, with full fine-tuning as a
horizontal line. Writes docs/frontier.md and docs/frontier_<task>.png::

    python -m benchmarks.quality_sweep --set methods --workers 2
    python -m benchmarks.quality_sweep --set frontier --workers 2
    .venv/bin/python -m benchmarks.frontier

Only the methods' default settings and their sizes appear (not the learning-rate or switch
candidates of the sweep); a point's label says over how many seeds its median is (fewer
than 3 is marked: not a quality claim).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from benchmarks.quality_spec import TASKS
from benchmarks.quality_sweep import CANDIDATES, JSON_OUT, SECOND_WAVE, SIZES
from benchmarks.quality_sweep_report import machine_label, recorded_runs, summarize

TASK_TITLES = {"trec": "TREC-6 test accuracy", "conll2003": "CoNLL-2003 test F1"}


def frontier_rows(summary: dict[tuple[str, str], dict[str, Any]]) -> set[str]:
    """The sweep's candidates that are a method at some size: each method's default and
    every candidate that changes only method options (BitFit is ``head-bias``), not the
    learning rate or a training switch."""
    sized = [c for c in (*CANDIDATES, *SECOND_WAVE, *SIZES) if c.lr is None and not c.switches]
    return {s["method"] for s in summary.values()} | {c.name for c in sized}


def points(task: str, sweep: Path = JSON_OUT) -> dict[str, list[dict[str, Any]]]:
    """Per method, its recorded sizes on ``task``: trainable %, median test score, seeds."""
    summary = summarize(recorded_runs(sweep))
    rows = frontier_rows(summary)
    found: dict[str, list[dict[str, Any]]] = {}
    for (t, name), cell in summary.items():
        if t != task or name not in rows:
            continue
        point = {
            "row": name,
            "trainable": float(cell["trainable_percent"]),
            "score": cell["test"],
            "seeds": cell["n"],
            "machines": cell["machines"],
        }
        found.setdefault(cell["method"], []).append(point)
    for rows_of_method in found.values():
        rows_of_method.sort(key=lambda p: p["trainable"])
    return found


def plot(task: str, found: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """One PNG: a line per method family, full fine-tuning as a dashed horizontal line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 4.8))
    # A colour and a marker of its own per method: the default cycle has 10 colours and
    # there are more methods, so two would share one.
    colours = plt.get_cmap("tab20").colors
    markers = "osD^vP*Xh<>p"
    methods = sorted(name for name in found if name != "full")
    for index, name in enumerate(methods):
        rows = found[name]
        xs, ys = [p["trainable"] for p in rows], [p["score"] for p in rows]
        style = {"color": colours[(2 * index) % 20 + index // 10], "marker": markers[index % 12]}
        axis.plot(xs, ys, label=name, **style)
        for p in rows:
            mark = "" if p["seeds"] >= 3 else f" (n={p['seeds']})"
            axis.annotate(p["row"] + mark, (p["trainable"], p["score"]), fontsize=7)
    for p in found.get("full", []):
        axis.axhline(p["score"], linestyle="--", color="black", label=f"full ({p['score']:.1f})")
    axis.set_xscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    axis.xaxis.set_major_formatter(plain)  # 0.5, 2, 10, not 5x10^-1
    # Minor ticks named at 2 and 5 of each decade only: all nine overlap near the ends.
    axis.xaxis.set_minor_formatter(
        matplotlib.ticker.FuncFormatter(
            lambda value, _: (
                f"{value:g}"
                if value > 0 and round(value / 10 ** math.floor(math.log10(value))) in (2, 5)
                else ""
            )
        )
    )
    axis.set_xlabel("trainable parameters (% of base + adapter + head)")
    axis.set_ylabel(TASK_TITLES[task] + " (median over seeds)")
    axis.set_title(f"MiniLM, {TASK_TITLES[task].split(' test')[0]}: quality vs trainable %")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # off the points
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(out: Path, sweep: Path = JSON_OUT) -> None:
    """docs/frontier.md plus one PNG per task with runs."""
    lines = [
        "# Quality against trainable parameters",
        "",
        f"Generated by `python -m benchmarks.frontier` from the runs recorded in {sweep} "
        "(`python -m benchmarks.quality_sweep --set methods` and `--set frontier`; the budget "
        "is in docs/results_sweep.md: MiniLM, TREC-6 5 epochs / CoNLL-2003 2 epochs, fp32, "
        "shuffled batches). Score: test median over the seeds that ran (n); rows with n < 3 "
        "are single observations, not quality claims. Trainable % counts adapter + head over "
        "base + adapter + head.",
        "",
    ]
    for task in TASKS:
        found = points(task, sweep)
        if not found:
            continue
        png = out.parent / f"frontier_{task}.png"
        plot(task, found, png)
        lines += [
            f"## {TASK_TITLES[task]}",
            "",
            f"![{task}]({png.name})",
            "",
            "| row | method | trainable % | score | n | ran on |",
            "|---|---|---:|---:|---:|---|",
        ]
        rows = sorted(
            ((m, p) for m, ps in found.items() for p in ps), key=lambda mp: mp[1]["trainable"]
        )
        for method, p in rows:
            lines.append(
                f"| {p['row']} | {method} | {p['trainable']:.3f} | {p['score']:.1f} | "
                f"{p['seeds']} | {', '.join(machine_label(m) for m in p['machines'])} |"
            )
        lines.append("")
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/frontier.md")
    args = parser.parse_args()
    write(Path(args.out))


if __name__ == "__main__":
    main()

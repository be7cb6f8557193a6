"""From curves to the verdict: the common target, each contender's time to it, the PNG and
the page (docs/time_to_quality.md, and its summary inside docs/benchmarks.md)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from benchmarks.doc_blocks import block, put_block
from benchmarks.time_to_quality.contenders import CONTENDERS, Curve

GOAL = 0.5
"""The issue's goal: adapterkit's default reaches the target in at most this share of the
best peer's time."""


def target_of(curves: list[Curve]) -> tuple[float, str] | None:
    """The final validation score of the best peer adapter run (median over its seeds) and
    whose it is; None before any peer adapter ran."""
    finals: dict[str, list[float]] = {}
    for curve in curves:
        contender = CONTENDERS[curve.contender]
        if contender.venv is not None and contender.adapter:
            finals.setdefault(curve.contender, []).append(curve.validation[-1])
    if not finals:
        return None
    name = max(finals, key=lambda k: statistics.median(finals[k]))
    return statistics.median(finals[name]), name


def _median(values: list[float | None]) -> float | None:
    """Median with None as never (infinite); None when the median never got there."""
    finite = sorted(math.inf if v is None else v for v in values)
    middle = statistics.median(finite) if finite else math.inf
    return None if math.isinf(middle) else middle


def summary(curves: list[Curve], target: float) -> dict[str, dict]:
    """Per contender: seeds, median time to target, how many seeds reached it, median final
    validation (the model it ends with), test, run seconds and trainable %."""
    out: dict[str, dict] = {}
    for name in CONTENDERS:
        mine = [c for c in curves if c.contender == name]
        if not mine:
            continue
        times = [c.first_reaching(target) for c in mine]
        keeps_best = CONTENDERS[name].keeps_best
        ends = [max(c.validation) if keeps_best else c.validation[-1] for c in mine]
        out[name] = {
            "seeds": len(mine),
            "time": _median(times),
            "reached": sum(t is not None for t in times),
            "validation": statistics.median(ends),
            "test": _median([c.test for c in mine]),
            "run_seconds": statistics.median(c.run_seconds for c in mine),
            "trainable": mine[0].trainable_percent,
            "version": mine[0].version,
            "days": ", ".join(sorted({c.day for c in mine if c.day})) or "–",
        }
    return out


def verdict(rows: dict[str, dict]) -> str:
    """adapterkit's time to target over the fastest peer adapter's, against the goal."""
    ours = rows.get("adapterkit", {}).get("time")
    peers = {
        k: v["time"]
        for k, v in rows.items()
        if CONTENDERS[k].adapter and CONTENDERS[k].venv and v["time"]
    }
    if ours is None or not peers:
        return "no ratio: " + (
            "adapterkit did not reach the target" if ours is None else "no peer reached it"
        )
    best = min(peers, key=peers.get)
    ratio = ours / peers[best]
    met = "met" if ratio <= GOAL else "not met"
    return f"{ours:.3g} s / {peers[best]:.3g} s ({best}) = **{ratio:.2f}x** ({met} at <= {GOAL}x)"


def candidate_lines(curves: list[Curve]) -> list[str]:
    """Each candidate default against the contender it would change, by the rule of
    docs/switches.md: its validation median (best epoch, as the run keeps it) may not fall
    below the other's by more than seed noise; the test scores and the seconds per epoch
    (runs stop at different epochs, so whole runs do not compare) beside."""
    from benchmarks.switches import Arm, verdict

    def arm(name: str) -> tuple[Arm, float, set[str]]:
        mine = [c for c in curves if c.contender == name]
        scores = Arm(
            [max(c.validation) for c in mine],
            [c.test for c in mine if c.test is not None],
            [c.run_seconds / 60 for c in mine],
        )
        per_epoch = statistics.median(c.seconds[-1] / len(c.seconds) for c in mine)
        return scores, per_epoch, {c.day for c in mine}

    lines = []
    for name, contender in CONTENDERS.items():
        base = contender.candidate_of
        ran = {c.contender for c in curves}
        if base is None or not {name, base} <= ran:
            continue
        (switched, fast, days), (without, slow, base_days) = arm(name), arm(base)
        diff, noise, said = verdict(without, switched)
        judged = "" if math.isnan(diff) else f", difference {diff:+.1f} (noise {noise:.1f})"
        apart = "" if days == base_days else " (run on different days: these do not compare)"
        lines.append(
            f"- Candidate **{name}** against {base}: best validation "
            f"{switched.cell(switched.validation)} vs {without.cell(without.validation)}"
            f"{judged}: **{said}**; test {switched.cell(switched.test)} vs "
            f"{without.cell(without.test)}; seconds per epoch {fast:.1f} vs {slow:.1f}{apart}."
        )
    return lines


def plot(curves: list[Curve], target: float, title: str, path: Path) -> None:
    """Validation score against training seconds, every run a line, the target dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = dict(
        zip(CONTENDERS, ["tab:red", "tab:orange", "tab:blue", "tab:green", "tab:gray"], strict=True)
    )
    for curve in sorted(curves, key=lambda c: (c.contender, c.seed)):
        first = curve.seed == min(c.seed for c in curves if c.contender == curve.contender)
        ax.plot(
            curve.seconds,
            curve.validation,
            marker="o",
            color=colours[curve.contender],
            alpha=0.8,
            label=curve.contender if first else None,
        )
    ax.axhline(target, linestyle="--", color="black", linewidth=1, label=f"target {target:.1f}")
    ax.set_xlabel("training seconds (validation included)")
    ax.set_ylabel("validation score (%)")
    low = min(min(c.validation) for c in curves)
    ax.set_ylim(max(low, target - 15), None)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: dict[str, dict], metric: str) -> list[str]:
    """The markdown table of one task."""
    lines = [
        f"| contender | seeds | seconds to target (median) | seeds reaching it | final validation {metric} "
        f"| test {metric} | training seconds | trainable % | run on |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        time = "not reached" if row["time"] is None else f"{row['time']:.3g}"
        test = "–" if row["test"] is None else f"{row['test']:.1f}"
        lines.append(
            f"| {name} | {row['seeds']} | {time} | {row['reached']}/{row['seeds']} | {row['validation']:.1f} "
            f"| {test} | {row['run_seconds']:.0f} | {row['trainable']:.2f} | {row['days']} |"
        )
    return lines


def write_pages(sections: list[str], summaries: list[str], page: Path, benchmarks: Path) -> None:
    """The full page, and the summary in its block of docs/benchmarks.md."""
    page.write_text("\n".join(sections) + "\n")
    if benchmarks.exists():
        put_block(benchmarks, block("time-to-quality", summaries))

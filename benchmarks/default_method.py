"""Which method should a run train when the user names none? Ranked per task type, on validation.

docs/default_method.md comes from this script, which trains nothing: it reads the
validation scores of two committed studies,

- docs/results_sweep.json (``python -m benchmarks.quality_sweep``): the built-in sets at
  their full budget, 3 or more seeds per method;
- docs/small_data_study.json (``python -m benchmarks.small_data_study``): seeded small
  subsamples of them, 3 seeds each, every option at its default but the method;

and ranks, for each task type, the methods that have 3 or more seeds on every set of that
type by their median validation score on each set. A method's score is the mean of two
halves: its rank on the full-size set, and its mean rank over the small sets (robustness
counts as much as the best score, however many small variants there are). The pick has
the best score (ties: the better worst seed on the small sets); a method stuck at the
trivial predictor on any run is out. Test scores are never read. Then it says whether
``adapterkit.train.default_method.DEFAULT_METHODS`` agrees.

    .venv/bin/python -m benchmarks.default_method
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from adapterkit.train.default_method import DEFAULT_METHODS, FALLBACK_METHOD
from benchmarks.small_data_study import SWITCHED

SWEEP = Path("docs/results_sweep.json")
SMALL = Path("docs/small_data_study.json")
DOC = Path("docs/default_method.md")
MIN_SEEDS = 3
# Task type -> the sets that stand for it: full-size built-in sets, then small variants.
TASK_SETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sequence-classification": (
        ("trec",),
        ("trec-500", "trec-2000", "movie-sentiment-500", "movie-sentiment-2000"),
    ),
    "token-classification": (
        ("conll2003",),
        ("conll2003-1000", "conll2003-2000", "conll2003-rare-1000"),
    ),
}


def validation_scores() -> tuple[dict[str, dict[str, list[float]]], dict[str, set[str]]]:
    """Set -> method -> validation scores (one per seed), and set -> methods with a stuck run."""
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    stuck: dict[str, set[str]] = defaultdict(set)
    for run in json.loads(SWEEP.read_text())["runs"]:
        if run["candidate"] == run["method"]:  # the method at its defaults, not a variant
            scores[run["task"]][run["method"]].append(run["validation"])
    for run in json.loads(SMALL.read_text()):
        if run["method"] in SWITCHED:  # a method with a training switch, not a method choice
            continue
        scores[run["variant"]][run["method"]].append(run["validation"])
        if run["stuck"]:
            stuck[run["variant"]].add(run["method"])
    return scores, stuck


def rank_task(
    task_type: str,
    scores: dict[str, dict[str, list[float]]],
    stuck: dict[str, set[str]],
    small_only: bool = False,
) -> dict[str, Any]:
    """The ranked methods of one task type, with the pick and who could not be ranked;
    ``small_only``: on the small sets alone (a preview while full-size runs are missing)."""
    full, small = TASK_SETS[task_type]
    full = () if small_only else full
    sets = (*full, *small)
    methods = sorted({m for s in sets for m in scores[s]} - {"full"})
    ranked = [m for m in methods if all(len(scores[s][m]) >= MIN_SEEDS for s in sets)]
    missing = {
        m: [s for s in sets if len(scores[s][m]) < MIN_SEEDS] for m in methods if m not in ranked
    }
    out = {m: [s for s in sets if m in stuck[s]] for m in ranked}
    ranked = [m for m in ranked if not out[m]]
    rows = []
    for method in ranked:
        medians = {s: statistics.median(scores[s][method]) for s in sets}
        worst = min(min(scores[s][method]) for s in small)
        rows.append({"method": method, "medians": medians, "worst_small": worst})
    for name in sets:
        order = sorted(rows, key=lambda r, name=name: -r["medians"][name])
        for place, row in enumerate(order, 1):
            row.setdefault("ranks", {})[name] = place
    for row in rows:
        halves = [statistics.mean(row["ranks"][s] for s in part) for part in (full, small) if part]
        row["score"] = statistics.mean(halves)
    rows.sort(key=lambda r: (r["score"], -r["worst_small"]))
    return {
        "sets": sets,
        "rows": rows,
        "pick": rows[0]["method"] if rows else None,
        "missing": missing,
        "stuck": {m: s for m, s in out.items() if s},
    }


def _table_lines(found: dict[str, Any], mark_pick: bool = True) -> list[str]:
    """One ranking as a table (the pick in bold), then who was not ranked and who is out."""
    sets = found["sets"]
    lines = [
        "| method | "
        + " | ".join(f"{s} validation (rank)" for s in sets)
        + " | worst seed, small sets | score |",
        "|---|" + "---|" * (len(sets) + 2),
    ]
    for row in found["rows"]:
        cells = [f"{row['medians'][s]:.1f} ({row['ranks'][s]})" for s in sets]
        picked = mark_pick and row["method"] == found["pick"]
        name = f"**{row['method']}**" if picked else row["method"]
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {row['worst_small']:.1f} | {row['score']:.2f} |"
        )
    lines.append("")
    if found["missing"]:
        lines += [
            f"Not ranked (fewer than {MIN_SEEDS} seeds on): "
            + "; ".join(f"{m}: {', '.join(s)}" for m, s in found["missing"].items())
            + ".",
            "",
        ]
    if found["stuck"]:
        lines += [
            "Out (a run stuck at the trivial predictor): "
            + "; ".join(f"{m} on {', '.join(s)}" for m, s in found["stuck"].items())
            + ".",
            "",
        ]
    return lines


def write_doc(result: dict[str, tuple[dict[str, Any], dict[str, Any]]], path: Path) -> None:
    """docs/default_method.md."""
    lines = [
        "# The default method per task type",
        "",
        "Generated by `python -m benchmarks.default_method` from the validation scores in "
        f"{SWEEP} (the built-in sets at full budget, `python -m benchmarks.quality_sweep`) and "
        f"{SMALL} (seeded small subsamples, `python -m benchmarks.small_data_study`). Only "
        "validation splits are read. A method is ranked on a task type when it has at least "
        f"{MIN_SEEDS} seeds on every set of that type; on each set the methods are ranked by "
        "their median validation score (1 = best). A method's score is the mean of its rank "
        "on the full-size set and its mean rank over the small sets: robustness counts as "
        "much as the best score. The pick has the best score (ties: the better worst seed on "
        "the small sets). A method with any run stuck at the trivial predictor is out.",
        "",
    ]
    for task_type, (found, preview) in result.items():
        lines += [f"## {task_type}", "", *_table_lines(found)]
        code = DEFAULT_METHODS.get(task_type, FALLBACK_METHOD)
        verdict = "agrees" if code == found["pick"] else "**differs**"
        lines += [
            f"Pick: **{found['pick']}**. The code's default for {task_type} "
            f"(`DEFAULT_METHODS` in adapterkit/train/default_method.py) is {code}: it {verdict}.",
            "",
        ]
        if found["missing"]:
            lines += [
                f"### {task_type}, on the small sets alone",
                "",
                "A preview while some methods lack full-size runs, not a pick: every method "
                f"with {MIN_SEEDS} seeds on each small set, ranked by the mean of its ranks "
                "there.",
                "",
                *_table_lines(preview, mark_pick=False),
            ]
    others = sorted(set(DEFAULT_METHODS) - set(result))
    lines += [
        "## Other task types",
        "",
        f"No study covers them yet, so they keep {FALLBACK_METHOD}, the default before "
        "per-type defaults"
        + (f" (the table also sets: {', '.join(others)})." if others else ".")
        + " A run that gives options of one method but no `--method` trains "
        f"{FALLBACK_METHOD}, as before.",
        "",
    ]
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args()
    scores, stuck = validation_scores()
    result = {
        task: (rank_task(task, scores, stuck), rank_task(task, scores, stuck, small_only=True))
        for task in TASK_SETS
    }
    write_doc(result, args.out)


if __name__ == "__main__":
    main()

"""A 24-trial search against the defaults and full fine-tuning (docs/search_study.md).

``python -m benchmarks.search_study`` runs, one at a time, the searches ``--searches``
names (TASK:K[:P]: K trials packed into one run, 1 being the CPU default; pruning from
epoch P, 1 being the default). The best options of the first search of each task and P
are retrained alone at three new seeds, beside ``adapterkit train``'s defaults at the
same seeds and budget. Then it writes docs/search_study.md and its summary in
docs/results.md. Runs already recorded under ``runs/search_study`` are read, not
repeated; ``--report-only`` runs nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.search_study.report import write_page
from benchmarks.search_study.runs import RETRAIN_SEEDS, ROOT, best_label, run_search, run_train

RUNS = ROOT / "runs" / "search_study"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--searches",
        nargs="+",
        default=["trec:1", "conll2003:1", "trec:4"],
        help="TASK:K[:P] (P: --prune-from), run in this order",
    )
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--page", type=Path, default=ROOT / "docs" / "search_study.md")
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "results.md")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    searches = [_search_spec(item) for item in args.searches]
    if not args.report_only:
        retrained: set[tuple[str, int]] = set()
        for task, parallel, prune_from in searches:
            study = run_search(args.runs, task, parallel, args.trials, prune_from)
            if (task, prune_from) in retrained:
                continue
            retrained.add((task, prune_from))
            for seed in RETRAIN_SEEDS:
                run_train(args.runs, task, best_label(prune_from), study["best"]["options"], seed)
                run_train(args.runs, task, "default", {}, seed)
    write_page(args.runs, searches, args.trials, args.page, args.results)


def _search_spec(text: str) -> tuple[str, int, int]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(part.isdigit() for part in parts[1:]):
        raise SystemExit(f"--searches: expected TASK:K or TASK:K:P, got {text!r}")
    return parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 1


if __name__ == "__main__":
    main()

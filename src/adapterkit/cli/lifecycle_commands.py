"""``adapterkit merge`` and ``compose``: bundles made from other bundles."""

from __future__ import annotations

import argparse
import json
from typing import Any

from adapterkit.lifecycle.merge import COMBINES


def add_merge_flags(parser: argparse.ArgumentParser) -> None:
    """The ``merge`` command's arguments."""
    parser.add_argument(
        "bundles",
        nargs="+",
        help="bundle folders of one method (LoRA and AdaLoRA count as one), shape and base",
    )
    parser.add_argument("--out", required=True, help="bundle folder to write (a new one)")
    parser.add_argument(
        "--weights",
        nargs="+",
        type=float,
        help="one per bundle; LoRA deltas take them as given (task arithmetic: 1 1 adds both), "
        "other tensors and heads are averaged with them normalised to sum 1 (default: 1/N; "
        "1 each for ties)",
    )
    parser.add_argument(
        "--combine",
        default="linear",
        choices=COMBINES,
        help="linear: weighted sum/average; ties, dare: of LoRA deltas (default: linear)",
    )
    parser.add_argument(
        "--density", type=float, help="ties/dare: share of each delta's entries kept (default 0.5)"
    )
    parser.add_argument(
        "--rank",
        type=int,
        help="LoRA: merged rank (default: the sum of the parents' ranks, exact for linear)",
    )
    parser.add_argument("--seed", type=int, default=0, help="dare: seed of its random drops")
    parser.add_argument(
        "--head-from",
        help="keep this bundle's head and task (1-based number or its path) instead of "
        "averaging the heads; needed when they differ",
    )
    parser.add_argument("--name", help="merged adapter's name (default: the --out folder's name)")


def cmd_merge(values: dict[str, Any]) -> int:
    """Merge bundles into one and print a JSON line saying what was written."""
    from adapterkit.files import check_writable_dir
    from adapterkit.lifecycle.merge_bundles import MergeOptions, merge_bundles

    check_writable_dir(values["out"], "--out")
    options = MergeOptions(
        weights=values["weights"],
        combine=values["combine"],
        density=values["density"],
        rank=values["rank"],
        seed=values["seed"],
        head_from=values["head_from"],
        name=values["name"],
    )
    record = merge_bundles(values["bundles"], values["out"], options)
    summary = {
        "merged": values["out"],
        "name": record["name"],
        "method": record["method"],
        "parents": len(record["parents"]),
        "head": (record["head"] or {}).get("type"),
        **record["merge"],
    }
    print(json.dumps(summary))
    return 0


def add_compose_flags(parser: argparse.ArgumentParser) -> None:
    """The ``compose`` command's arguments."""
    from adapterkit.lifecycle.compose_bundles import COMPOSE_MODES

    parser.add_argument(
        "bundles",
        nargs="+",
        help="bundle folders of one base (bottleneck or LoRA adapters); each layer composes "
        "the parts that adapt it",
    )
    parser.add_argument(
        "--mode",
        required=True,
        choices=COMPOSE_MODES,
        help="average: the mean of the parts' outputs in each layer (an ensemble); stack: "
        "each part on the previous one's output, in the order given",
    )
    parser.add_argument("--out", required=True, help="bundle folder to write (a new one)")
    parser.add_argument(
        "--head-from",
        help="keep this bundle's head and task (1-based number or its path); needed when "
        "the parts have heads",
    )
    parser.add_argument(
        "--weights",
        nargs="+",
        type=float,
        help="--mode average: one weight per bundle, normalised to sum 1 (default: equal)",
    )
    parser.add_argument("--name", help="the composition's name (default: the --out folder's)")


def cmd_compose(values: dict[str, Any]) -> int:
    """Write a composition bundle and print a JSON line saying what was written."""
    from adapterkit.files import check_writable_dir
    from adapterkit.lifecycle.compose_bundles import compose_bundles

    check_writable_dir(values["out"], "--out")
    record = compose_bundles(
        values["bundles"],
        values["out"],
        values["mode"],
        values["head_from"],
        values["name"],
        values["weights"],
    )
    summary = {
        "composed": values["out"],
        "name": record["name"],
        "mode": values["mode"],
        "parts": [parent["name"] for parent in record["parents"]],
        "head": (record["head"] or {}).get("type"),
    }
    print(json.dumps(summary))
    return 0

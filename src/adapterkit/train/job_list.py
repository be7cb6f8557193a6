"""The job list of a run with several jobs: checked before training, recorded for ``--resume``,
and summed up in a table when the run ends.

``<run>/config.yaml`` names the jobs (each job's own options are in
``<run>/<job>/config.yaml``); ``<run>/summary.json`` and ``summary.md`` hold every job's
final metrics and, for jobs that differ only in their seed, the median over seeds.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from adapterkit.bundle import check_adapter_name
from adapterkit.errors import AdapterkitError
from adapterkit.files import atomic_write_bytes
from adapterkit.train.options import JobSpec

# Options that shape the one base every job shares: they must be the same in every job.
SHARED_OPTIONS = (
    "model", "device", "report_to", "mlflow_uri", "quantize", "share_adapter",
    "sampling_temperature",
)  # fmt: skip
SHARED_TRAINING = (
    "precision",
    "attention_dropout",
    "activation_checkpointing",
    "shard_base",
)


def check_job_specs(specs: list[JobSpec]) -> None:
    """Refuse, in one line, a job list the run cannot train."""
    if not specs:
        raise AdapterkitError("a run needs at least one job")
    names = [spec.name for spec in specs]
    for name in names:
        check_adapter_name(name)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise AdapterkitError(f"job name(s) {', '.join(twice)} given twice; name each job once")
    if len(specs) > 1 and any(spec.options.method == "full" for spec in specs):
        raise AdapterkitError(
            "full fine-tuning changes the base every job shares: train it in a run of its own"
        )
    for key in (*SHARED_OPTIONS, *SHARED_TRAINING):
        values = {
            spec.name: getattr(spec.options if key in SHARED_OPTIONS else spec.config, key)
            for spec in specs
        }
        if len(set(map(repr, values.values()))) > 1:
            listed = ", ".join(f"{name}: {value!r}" for name, value in values.items())
            raise AdapterkitError(f"jobs of one run share the base, so {key} must agree ({listed})")


def spec_of(specs: list[JobSpec], key: str) -> Any:
    """A base-shaping option every job agrees on (see :func:`check_job_specs`)."""
    first = specs[0]
    return getattr(first.options if key in SHARED_OPTIONS else first.config, key)


def record_job_list(run_dir: Path, specs: list[JobSpec], resume: bool) -> None:
    """Write ``<run>/config.yaml`` naming the jobs; ``--resume`` must find the same list."""
    path = run_dir / "config.yaml"
    names = [spec.name for spec in specs]
    if resume and path.is_file():
        try:
            before = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("jobs")
        except yaml.YAMLError as error:
            raise AdapterkitError(f"--resume: cannot read {path}: {error}") from None
        if before is not None and before != names:
            raise AdapterkitError(
                f"--resume: {run_dir} was started with jobs {before}, not {names}; "
                "pass the same jobs, or train into a new --output"
            )
    text = yaml.safe_dump({"jobs": names}, sort_keys=False)
    atomic_write_bytes(path, text.encode("utf-8"))


def write_job_table(
    run_dir: Path,
    specs: list[JobSpec],
    finals: dict[str, dict[str, Any]],
    metrics: dict[str, str],
) -> None:
    """``summary.json`` (every job's final metrics) and ``summary.md`` (one row per job, and
    the median over seeds of jobs that differ only in their seed)."""
    varying = _varying_options(specs)
    rows = []
    for spec in specs:
        final, metric = finals[spec.name], metrics[spec.name]
        rows.append(
            {
                "job": spec.name,
                "settings": {k: v for k, v in _options(spec).items() if k in varying},
                "split": final.get("split"),
                "metric": metric,
                "score": final.get(metric),
            }
        )
    summary = {"jobs": rows, "finals": finals}
    atomic_write_bytes(
        run_dir / "summary.json", json.dumps(summary, indent=1, default=str).encode()
    )
    atomic_write_bytes(run_dir / "summary.md", _table(rows).encode("utf-8"))


def _options(spec: JobSpec) -> dict[str, Any]:
    """A job's options that can tell jobs apart (hyperparameters, method and data)."""
    options = {f"method_{k}": v for k, v in spec.options.method_options.items()}
    options.update({k: v for k, v in asdict(spec.config).items()})
    for key in ("data", "train_file", "method", "task"):
        options[key] = getattr(spec.options, key)
    return options


def _varying_options(specs: list[JobSpec]) -> list[str]:
    """The options whose values differ between jobs, in a stable order."""
    seen: dict[str, set[str]] = defaultdict(set)
    for spec in specs:
        for key, value in _options(spec).items():
            seen[key].add(repr(value))
    return [key for key, values in seen.items() if len(values) > 1]


def _fmt(value: Any) -> str:
    """An option's value as the table shows it."""
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def _score(value: Any) -> str:
    """A metric: scores in [0, 1] as percentages (as the reports show them)."""
    if isinstance(value, float):
        return f"{100 * value:.1f}" if 0 <= value <= 1 else f"{value:.4g}"
    return "-" if value is None else str(value)


def _table(rows: list[dict[str, Any]]) -> str:
    """The markdown of ``summary.md``."""
    keys = sorted({k for row in rows for k in row["settings"]})
    lines = [
        "# Jobs of this run",
        "",
        "| job | " + " | ".join(keys) + " | split | metric | score |",
    ]
    lines.append("|" + "---|" * (len(keys) + 4))
    for row in rows:
        cells = [row["job"], *(_fmt(row["settings"].get(k)) for k in keys)]
        cells += [row["split"] or "-", row["metric"], _score(row["score"])]
        lines.append("| " + " | ".join(cells) + " |")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        setting = {k: v for k, v in row["settings"].items() if k != "seed"}
        groups[json.dumps(setting, sort_keys=True, default=str)].append(row)
    seeded = {k: v for k, v in groups.items() if len(v) > 1}
    if seeded and any("seed" in row["settings"] for row in rows):
        lines += ["", "## Median over seeds", "", "| setting | seeds | metric | median | scores |"]
        lines.append("|---|---|---|---|---|")
        for setting, members in seeded.items():
            scores = [m["score"] for m in members if isinstance(m["score"], int | float)]
            median = statistics.median(scores) if scores else None
            shown = ", ".join(f"{k} {_fmt(v)}" for k, v in json.loads(setting).items()) or "-"
            lines.append(
                f"| {shown} | {len(members)} | {members[0]['metric']} | {_score(median)} | "
                + ", ".join(_score(s) for s in scores)
                + " |"
            )
    return "\n".join(lines) + "\n"

"""From merged ``search`` values to a :class:`~adapterkit.search.SearchRequest`.

The search drives training runs and sits below the command line, so what needs the
command line's flags is built here and handed down: the parsed space, how a trial's
values become its job, and the command that retrains a trial alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapterkit.cli.flags import method_flags, option_keys
from adapterkit.cli.jobs import job_specs
from adapterkit.errors import AdapterkitError
from adapterkit.methods import make_config
from adapterkit.search import Param, SearchRequest, load_space, parse_space
from adapterkit.train.options import DEFAULT_METHOD, JobSpec


def search_request(values: dict[str, Any], parallel: int) -> SearchRequest:
    """The search the values ask for.

    Raises:
        AdapterkitError: One line for several jobs or a bad space.
    """
    if values.get("init_from"):
        # A trial would draw its own method and shape, and a continued adapter keeps its own.
        raise AdapterkitError("search trains fresh adapters; --init-from is for train")
    values = {**values, "method": values.get("method") or DEFAULT_METHOD}
    specs = job_specs(values)
    if len(specs) != 1:
        raise AdapterkitError(
            "search runs one task: drop the jobs list and multi-valued options (the space "
            "says what varies)"
        )
    fields = {spec.dest: spec.name for spec in method_flags()}
    space = values.get("space")
    params = parse_space(load_space(space), option_keys(), fields, space or "space")
    check_space_values(values, params, space or "space")
    return SearchRequest(
        base=specs[0],
        params=params,
        trial_spec=lambda name, chosen: trial_spec(values, name, chosen),
        retrain=lambda chosen: retrain_command(values, chosen),
        output=Path(values["output"]),
        resume=bool(values.get("resume")),
        trials=values["trials"],
        parallel=parallel,
    )


def check_space_values(values: dict[str, Any], params: list[Param], where: str) -> None:
    """Refuse, before any trial, a value the space can draw that no trial could train with
    (``rank`` from 0, a dropout of 1.5, a negative lr): each choice, and each end of each
    range, goes through the same checks as a trial's options, for every method it applies to.

    Raises:
        AdapterkitError: One line naming the option, the value and what is wrong with it.
    """
    by_dest = {param.dest: param for param in params}
    methods = list(by_dest["method"].choices) if "method" in by_dest else [values["method"]]
    for param in params:
        if param.kind == "categorical":
            drawn = list(param.choices)
        else:
            drawn = (
                [int(param.low), int(param.high)]
                if param.kind == "int"
                else [param.low, param.high]
            )
        for value in drawn:
            for method in methods:
                if param.dest == "method":
                    chosen = {"method": value}
                elif param.applies_to(method):
                    chosen = {"method": method, param.dest: value}
                else:
                    continue
                try:
                    options = trial_spec(values, "space-check", chosen).options
                    make_config(options.method, **options.method_options)
                except AdapterkitError as exc:
                    raise AdapterkitError(
                        f"{where}: {param.dest} = {value!r} cannot be trained ({exc})"
                    ) from None


def trial_spec(values: dict[str, Any], name: str, chosen: dict[str, Any]) -> JobSpec:
    """The job of one trial: the command's options with the trial's values over them.

    Method options the trial's method does not have (``--rank`` on a bottleneck trial)
    are left out, not an error.
    """
    merged = {**values, **chosen, "adapter_name": name, "report_to": ["none"]}
    config = make_config(chosen["method"])
    for spec in method_flags():
        if merged.get(spec.dest) is not None and not hasattr(config, spec.name):
            merged[spec.dest] = None
    (job,) = job_specs(merged)
    return job


def retrain_command(values: dict[str, Any], options: dict[str, Any]) -> str:
    """The ``adapterkit train`` command that trains a trial's values alone."""
    parts = ["adapterkit train", f"--model {values.get('model')}"]
    source = values.get("data")
    parts.append(f"--data {source}" if source else f"--train {values.get('train_file')}")
    flags = {spec.dest: spec.flag for spec in method_flags()}
    for dest, value in options.items():
        flag = flags.get(dest) or "--" + dest.replace("_", "-")
        parts.append(f"{flag} {value}")
    return " ".join(parts)

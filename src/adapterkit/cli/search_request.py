"""From merged ``search`` values to a :class:`~adapterkit.search.SearchRequest`.

The search drives training runs and sits below the command line, so what needs the
command line's flags is built here and handed down: the parsed space, how a trial's
values become its job, and the command that retrains a trial alone.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from adapterkit.cli.fields import dataclass_defaults
from adapterkit.cli.flags import method_flags, option_keys, run_flags, train_flags
from adapterkit.cli.jobs import job_specs
from adapterkit.errors import AdapterkitError
from adapterkit.methods import make_config
from adapterkit.search import Param, SearchRequest, load_space, parse_space
from adapterkit.train.options import DEFAULT_METHOD, JobSpec, RunOptions


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
        prune_from=1 if values.get("prune_from") is None else values["prune_from"],
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
    merged = {**_trial_values(values, chosen), "adapter_name": name, "report_to": ["none"]}
    (job,) = job_specs(merged)
    return job


def _trial_values(values: dict[str, Any], chosen: dict[str, Any]) -> dict[str, Any]:
    """The command's values with a trial's over them, less the method options its method
    does not have."""
    merged = {**values, **chosen}
    config = make_config(chosen["method"])
    for spec in method_flags():
        if merged.get(spec.dest) is not None and not hasattr(config, spec.name):
            merged[spec.dest] = None
    return merged


# A retrain names its own run; the rest of what the search was given trains the trial.
_PER_RUN = {"output", "adapter_name", "resume"}


def retrain_command(values: dict[str, Any], options: dict[str, Any]) -> str:
    """The ``adapterkit train`` command that trains a trial alone: every option the search
    was given (as a flag or in its config file) with the trial's values over them.

    Without the options the search held fixed (``--epochs 2``, its own data files) the
    command would train something other than the trial it names.
    """
    merged = _trial_values(values, options)
    run_defaults = dataclass_defaults(RunOptions)
    parts = ["adapterkit", "train"]
    for spec in (*run_flags(), *train_flags(), *method_flags()):
        value = merged.get(spec.dest)
        if spec.flag is None or spec.dest in _PER_RUN or value is None or value == []:
            continue
        always = spec.dest in ("model", "data") or spec.dest in options
        if not always and spec.name in run_defaults and value == run_defaults[spec.name]:
            continue
        if value is True:
            parts.append(spec.flag)
        elif value is False:  # only a negatable training switch can be turned off
            if spec in train_flags():
                parts.append("--no-" + spec.flag[2:])
        else:
            parts.append(spec.flag)
            parts += [str(item) for item in (value if isinstance(value, list) else [value])]
    return shlex.join(parts)

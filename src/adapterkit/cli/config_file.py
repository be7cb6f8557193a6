"""The YAML ``--config`` file of ``adapterkit train``/``demo``, merged under the flags.

Keys are the option fields' names (or their flags' dests, such as ``rank`` for the
LoRA field ``r``), with ``-`` or ``_``, at the top level or in sections of any name:
the ``config.yaml`` a run writes (sections ``run``, ``train``, ``adapter``) is a valid
``--config`` file.

A ``jobs:`` list makes a run of several jobs (multi-task learning, say): each entry is
a mapping of the same keys (plus ``name``) that overrides the file's shared options for
that job; flags given on the command line apply to every job. ``adapterkit search``
also reads its own ``space``, ``trials``, ``parallel`` and ``prune_from`` from the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from adapterkit.cli.flags import option_keys
from adapterkit.errors import AdapterkitError
from adapterkit.files import read_user_yaml

SEARCH_KEYS = ("space", "trials", "parallel", "prune_from")


def _flatten(mapping: dict[Any, Any], into: dict[str, Any], section: str | None = None) -> None:
    for key, value in mapping.items():
        key = str(key).replace("-", "_")
        if isinstance(value, dict):  # a section (run:, train:, adapter:, method_options:)
            _flatten(value, into, key)
        elif section == "adapter" and key == "method":
            # A run's adapter section names the config's method ("bottleneck") where the
            # run section names the preset that made it ("pfeiffer"): the run's wins.
            into.setdefault(key, value)
        else:
            into[key] = value


def read_config_file(path: Path) -> tuple[dict[str, Any], list[Any] | None]:
    """The options in a YAML file, flattened out of their sections, keys with ``_``, and
    its ``jobs:`` list (None when it has none).

    Raises:
        AdapterkitError: One line when the file is missing, not YAML or not a mapping.
    """
    loaded = read_user_yaml(path, "config file")
    if not isinstance(loaded, dict):
        raise AdapterkitError(f"{path}: expected 'option: value' pairs")
    jobs = loaded.pop("jobs", None)
    if jobs is not None and (not isinstance(jobs, list) or not jobs):
        raise AdapterkitError(f"{path}: 'jobs' must be a non-empty list of 'option: value' maps")
    flat: dict[str, Any] = {}
    _flatten(loaded, flat)
    return flat, jobs


def _checked(path: Path, flat: dict[str, Any], keys: dict[str, str], where: str = "") -> None:
    unknown = sorted(set(flat) - set(keys))
    if unknown:
        raise AdapterkitError(f"{path}: {where}unknown option(s) {', '.join(unknown)}")


def job_entries(
    path: Path, jobs: list[Any], keys: dict[str, str], given: set[str]
) -> list[dict[str, Any]]:
    """Each ``jobs:`` entry as values by dest, leaving out what the command line set."""
    entries = []
    for number, job in enumerate(jobs, 1):
        if not isinstance(job, dict):
            raise AdapterkitError(f"{path}: job {number} is not an 'option: value' map")
        flat: dict[str, Any] = {}
        _flatten(job, flat)
        if "name" in flat:  # the job's name is its adapter's name
            flat["adapter_name"] = flat.pop("name")
        _checked(path, flat, keys, f"job {number}: ")
        entries.append({keys[k]: v for k, v in flat.items() if keys[k] not in given})
    return entries


def merged_values(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Flags over YAML config over defaults: a flag wins only when given on the command line.

    Returns the parsed values by dest, with the config file's options filled in.

    Raises:
        AdapterkitError: One line for a bad file or keys that are no option.
    """
    values = vars(args).copy()
    if not args.config:
        return values
    path = Path(args.config)
    loaded, jobs = read_config_file(path)
    keys = option_keys()
    if args.command == "search":  # the search's own options may sit in the file too
        keys = {**keys, **{key: key for key in SEARCH_KEYS}}
    _checked(path, loaded, keys)
    defaults = vars(parser.parse_args([args.command]))
    given = {dest for dest, value in values.items() if value != defaults.get(dest)}
    for key, value in loaded.items():
        if keys[key] not in given:  # a flag on the command line wins
            values[keys[key]] = value
    if jobs is not None:
        values["jobs"] = job_entries(path, jobs, keys, given)
    return values

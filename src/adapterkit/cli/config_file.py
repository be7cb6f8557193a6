"""The YAML ``--config`` file of ``adapterkit train``/``demo``, merged under the flags.

Keys are the option fields' names (or their flags' dests, such as ``rank`` for the
LoRA field ``r``), with ``-`` or ``_``, at the top level or in sections of any name:
the ``config.yaml`` a run writes (sections ``run``, ``train``, ``adapter``) is a valid
``--config`` file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from adapterkit.cli.flags import option_keys
from adapterkit.errors import AdapterkitError


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


def read_config_file(path: Path) -> dict[str, Any]:
    """The options in a YAML file, flattened out of their sections, keys with ``_``.

    Raises:
        AdapterkitError: One line when the file is missing, not YAML or not a mapping.
    """
    if not path.is_file():
        raise AdapterkitError(f"{path}: config file not found")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise AdapterkitError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise AdapterkitError(f"{path}: expected 'option: value' pairs")
    flat: dict[str, Any] = {}
    _flatten(loaded, flat)
    return flat


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
    loaded = read_config_file(path)
    keys = option_keys()
    unknown = sorted(set(loaded) - set(keys))
    if unknown:
        raise AdapterkitError(f"{path}: unknown option(s) {', '.join(unknown)}")
    defaults = vars(parser.parse_args([args.command]))
    for key, value in loaded.items():
        dest = keys[key]
        if values.get(dest) == defaults.get(dest):  # not given as a flag
            values[dest] = value
    return values

"""What a search may change: distributions over training and method options.

A space file maps option names (as ``train`` flags and YAML keys spell them) to
distributions::

    lr: {type: loguniform, low: 1.0e-4, high: 1.0e-2}
    method: {type: categorical, choices: [pfeiffer, houlsby, lora]}
    reduction_factor: {type: categorical, choices: [8, 16, 32]}
    rank: {type: int, low: 4, high: 16}
    adapter_dropout: {type: uniform, low: 0.0, high: 0.2}

A method option is sampled only for trials whose method has it (``rank`` for LoRA,
``reduction_factor`` for bottleneck adapters); for the others it is left out, not an
error. Without a space file a built-in one per task type is used (:data:`DEFAULT_SPACE`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapterkit.errors import AdapterkitError
from adapterkit.files import read_user_yaml
from adapterkit.methods import make_config

KINDS = ("loguniform", "uniform", "int", "categorical")


@dataclass(frozen=True)
class Param:
    """One searched option and its distribution."""

    dest: str
    """The option as the run's values name it (``lr``, ``rank``, ``method`` ...)."""
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    field: str | None = None
    """The method-config field it sets (``r`` for ``rank``); None for other options."""

    def applies_to(self, method: str) -> bool:
        """Whether a trial with ``method`` samples this option (its config has the field)."""
        return self.field is None or hasattr(make_config(method), self.field)

    def suggest(self, trial: Any) -> Any:
        """The trial's value (Optuna's define-by-run ``suggest_*``)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.dest, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.dest, int(self.low), int(self.high))
        log = self.kind == "loguniform"
        return trial.suggest_float(self.dest, float(self.low), float(self.high), log=log)


# Built-in space for tasks with a head: the method, its size and the learning rate,
# around the defaults of docs/defaults_study.md (3e-3 bottleneck, 1e-3 LoRA).
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "method": {"type": "categorical", "choices": ["pfeiffer", "houlsby", "lora"]},
    "lr": {"type": "loguniform", "low": 3e-4, "high": 1e-2},
    "reduction_factor": {"type": "categorical", "choices": [8, 16, 32]},
    "rank": {"type": "categorical", "choices": [4, 8, 16]},
    "weight_decay": {"type": "categorical", "choices": [0.0, 0.01, 0.1]},
}


def load_space(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """The raw space of a YAML file, or the built-in one when ``path`` is None."""
    if path is None:
        return DEFAULT_SPACE
    raw = read_user_yaml(path, "space file")
    if not isinstance(raw, dict) or not raw:
        raise AdapterkitError(f"{path}: expected 'option: {{type: ..., ...}}' pairs")
    return raw


def parse_space(
    raw: dict[str, Any], keys: dict[str, str], fields: dict[str, str], where: str = "space"
) -> list[Param]:
    """Checked parameters of a raw space.

    Args:
        raw: option name -> ``{type, low, high}`` or ``{type: categorical, choices}``.
        keys: Every option name a run accepts, to its dest (``rank`` -> ``rank``).
        fields: Method-option dests to their config field (``rank`` -> ``r``).
        where: How messages name the space.

    Raises:
        AdapterkitError: One line for an unknown option, kind, empty range or choice
            list, or a log-uniform range that reaches 0.
    """
    params = []
    for name, spec in raw.items():
        key = str(name).replace("-", "_")
        if key not in keys:
            raise AdapterkitError(f"{where}: unknown option '{name}'")
        if not isinstance(spec, dict) or spec.get("type") not in KINDS:
            raise AdapterkitError(
                f"{where}: {name} needs a type, one of {', '.join(KINDS)} (got {spec!r})"
            )
        kind, dest = spec["type"], keys[key]
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise AdapterkitError(f"{where}: {name} needs a non-empty list of choices")
            if dest == "method":
                for method in choices:  # an unknown one would fail every trial that draws it
                    if not isinstance(method, str):
                        raise AdapterkitError(f"{where}: method choice {method!r} is no name")
                    make_config(method)
            params.append(Param(dest, kind, choices=tuple(choices), field=fields.get(dest)))
            continue
        low, high = spec.get("low"), spec.get("high")
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in (low, high)):
            raise AdapterkitError(f"{where}: {name} needs numbers low and high")
        if low >= high:
            raise AdapterkitError(f"{where}: {name} has an empty range [{low}, {high}]")
        if kind == "loguniform" and low <= 0:
            raise AdapterkitError(f"{where}: {name} is log-uniform, so low must be > 0 (got {low})")
        params.append(Param(dest, kind, float(low), float(high), field=fields.get(dest)))
    return params


def sample(trial: Any, params: list[Param], base_method: str) -> dict[str, Any]:
    """A trial's option values by dest: the method first, then what applies to it."""
    values: dict[str, Any] = {}
    by_dest = {param.dest: param for param in params}
    method = by_dest["method"].suggest(trial) if "method" in by_dest else base_method
    values["method"] = method
    for param in params:
        if param.dest != "method" and param.applies_to(method):
            values[param.dest] = param.suggest(trial)
    return values

"""Flags of the ``adapterkit`` subcommands, and the objects ``train`` builds from them.

The ``train``/``demo`` flags are generated (:mod:`adapterkit.cli.fields`) from three
kinds of dataclass: :class:`~adapterkit.train.options.RunOptions` (model, data,
outputs), :class:`~adapterkit.train.config.TrainConfig` (hyperparameters) and the
config of every registered adapter method. Adding a field to one of them adds its
flag, its help and its YAML key; nothing here names a field except to place
``--method`` in the method group.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

from adapterkit.cli.fields import FieldFlag, add_flags, dataclass_defaults, dataclass_flags
from adapterkit.errors import AdapterkitError
from adapterkit.methods import (
    AdapterConfig,
    config_class,
    known_methods,
    registered_configs,
)
from adapterkit.models import QUANTIZE_CHOICES
from adapterkit.precision import PRECISIONS
from adapterkit.train.config import TrainConfig
from adapterkit.train.options import DEFAULT_METHOD, RunOptions


@functools.cache
def run_flags() -> tuple[FieldFlag, ...]:
    """The fields of :class:`RunOptions` (``method_options`` is no flag: see :func:`method_flags`)."""
    return tuple(dataclass_flags(RunOptions))


@functools.cache
def train_flags() -> tuple[FieldFlag, ...]:
    """The fields of :class:`TrainConfig`."""
    return tuple(dataclass_flags(TrainConfig))


@functools.cache
def method_flags() -> tuple[FieldFlag, ...]:
    """The fields of every registered method's config, one flag per field name.

    Each method's own fields come first, their help prefixed with the method's name;
    a field two methods share (``dropout``) is one flag whose help gives both. The
    fields of :class:`AdapterConfig` (shared by all methods) come last.

    Raises:
        TypeError: Two methods spell the same field's flag differently.
    """
    shared = [f.name for f in dataclasses.fields(AdapterConfig)]
    merged: dict[str, FieldFlag] = {}
    helps: dict[str, dict[str, list[str]]] = {}  # field -> help text -> methods that say it
    for cls in registered_configs():
        for spec in dataclass_flags(cls):
            if spec.name in shared:
                continue
            seen = merged.setdefault(spec.name, spec)
            if dataclasses.replace(seen, help="") != dataclasses.replace(spec, help=""):
                raise TypeError(f"{cls.__name__}.{spec.name}: flag differs from other methods'")
            helps.setdefault(spec.name, {}).setdefault(spec.help, []).append(cls.method)
    for name, texts in helps.items():
        # A field that DoRA inherits from LoRA reads "lora, dora: ...", not the text twice.
        text = "; ".join(f"{', '.join(methods)}: {help}" for help, methods in texts.items())
        merged[name] = dataclasses.replace(merged[name], help=text)
    return (*merged.values(), *dataclass_flags(AdapterConfig))


def option_keys() -> dict[str, str]:
    """Every YAML key of a ``--config`` file (field names and flag dests) to its dest.

    Raises:
        TypeError: One key would set two different fields.
    """
    keys: dict[str, str] = {}
    for spec in (*run_flags(), *train_flags(), *method_flags()):
        for key in spec.keys:
            if keys.setdefault(key, spec.dest) != spec.dest:
                raise TypeError(f"option key {key!r} names two fields")
    return keys


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """The flags of ``adapterkit train`` and ``demo``: ``--config`` plus one per field."""
    run = [spec for spec in run_flags() if spec.name != "method"]
    g = p.add_argument_group("model and data")
    g.add_argument("--config", help="YAML file of option: value pairs (flags override it)")
    # Run options default to their own values: "None = not given" would hide them in --help.
    add_flags(g, run, defaults=dataclass_defaults(RunOptions))
    m = p.add_argument_group("adapter method")
    method = [spec for spec in run_flags() if spec.name == "method"]
    add_flags(m, method, defaults=dataclass_defaults(RunOptions))
    # Method and training options default to None, "not given": the method's or
    # TrainConfig's default applies unless a config file sets them.
    # Hyperparameters take one value or several (one job per combination: a packed run).
    add_flags(m, list(method_flags()), sweepable=True)
    t = p.add_argument_group("training (several values: one job per combination, trained together)")
    add_flags(t, list(train_flags()), negatable_bools=True, sweepable=True)


def one_value(spec: FieldFlag, value: Any) -> Any:
    """A single-valued option's value: sweepable flags parse into lists, and one job takes
    one value (several are expanded into jobs first, see :mod:`adapterkit.cli.jobs`)."""
    # A YAML-only key (no flag, so never swept) keeps its value as written: a
    # composition's parts are a list.
    if spec.many or spec.flag is None or not isinstance(value, list):
        return value
    if len(value) != 1:
        raise AdapterkitError(f"{spec.flag or spec.name} takes one value here, got {value}")
    return value[0]


def method_options(values: dict[str, Any]) -> dict[str, Any]:
    """The method-config fields given (as flags or YAML keys), by field name, for ``make_config``.

    Raises:
        AdapterkitError: An option the chosen method does not have (``--rank`` with ia3).
    """
    given = {spec.name: one_value(spec, values.get(spec.dest)) for spec in method_flags()}
    # An empty list (target_modules: [] in YAML) means "not given", as before: the default.
    given = {name: value for name, value in given.items() if value is not None and value != []}
    specs = {spec.name: spec for spec in method_flags()}
    # "parts" only comes from a run's config.yaml read back: the run re-derives them.
    if values.get("fuse") and given and "parts" not in given:
        shown = ", ".join(specs[name].flag or name for name in given)
        raise AdapterkitError(
            f"--fuse trains only the fusion and a head; {shown} would shape an adapter, and "
            "the parts keep their own: drop them"
        )
    method = values.get("method")
    # With --init-from the bundle's method, with --fuse a fusion: checked there.
    if method is None and not values.get("init_from") and not values.get("fuse"):
        method = DEFAULT_METHOD
    if isinstance(method, str) and method in known_methods():
        # The class's fields: a composition cannot be built without its parts.
        has = {f.name for f in dataclasses.fields(config_class(method))}
        stray = [specs[name].flag or name for name in given if name not in has]
        if stray:
            own = sorted(specs[name].flag for name in has if name in specs and specs[name].flag)
            # Fields with no flag are set in a --config file only: said apart from the flags.
            keys = sorted(name for name in has if name in specs and not specs[name].flag)
            raise AdapterkitError(
                f"{', '.join(stray)} {'does' if len(stray) == 1 else 'do'} not apply to "
                f"method '{method}' (its options: {', '.join(own)}"
                + (f"; in a --config file also {', '.join(keys)}" if keys else "")
                + ")"
            )
    return given


def run_options(values: dict[str, Any]) -> RunOptions:
    """:class:`RunOptions` from merged flag/YAML values."""
    kwargs = {spec.name: values[spec.dest] for spec in run_flags() if spec.dest in values}
    kwargs["method_options"] = method_options(values)
    return RunOptions(**kwargs)


def train_config(values: dict[str, Any]) -> TrainConfig:
    """:class:`TrainConfig` from merged flag/YAML values; None values keep the defaults."""
    return TrainConfig.from_dict(
        {spec.name: one_value(spec, values.get(spec.dest)) for spec in train_flags()}
    )


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer no smaller than ``minimum`` (for flags that no
    dataclass field defines, so :mod:`adapterkit.checked` does not see them)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def unit_interval(text: str) -> float:
    """An argparse ``type``: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {text}")
    return value


def add_precision_flag(p: argparse.ArgumentParser) -> None:
    """``--precision`` of the commands that run a task head (``evaluate``, ``predict``)."""
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="precision of the forwards: auto (default: bf16 autocast on a CPU with native "
        "bf16 or a GPU that supports it, else fp32; docs/bf16_inference.md), fp32, bf16, "
        "fp16. Generation runs fp32",
    )


def add_decode_flags(p: argparse.ArgumentParser) -> None:
    """Decoding flags of ``evaluate``, ``predict`` and ``generate`` (generation bundles)."""
    d = p.add_argument_group("decoding")
    d.add_argument("--max-new-tokens", type=int, help="most tokens to generate (default 128)")
    d.add_argument("--temperature", type=float, help="0 = greedy (default); > 0 samples")
    d.add_argument("--top-p", type=float, help="nucleus sampling threshold (default 1.0)")
    d.add_argument("--stop", action="append", help="stop string (repeatable)")
    d.add_argument("--seed", type=int, help="sampling seed (default 0)")
    d.add_argument("--batch-size", type=int, help="prompts per generate call (default 16)")
    d.add_argument("--max-length", type=at_least(1), help="prompt token cap (default: the model's)")


def add_serve_flags(p: argparse.ArgumentParser) -> None:
    """Flags of ``adapterkit serve``."""
    p.add_argument("--model", default="minilm", help="base model: alias, local path or hub id")
    p.add_argument("--adapters", required=True, help="folder of bundle folders to serve")
    p.add_argument(
        "--kind",
        default="encoder",
        choices=["encoder", "causal-lm", "seq2seq"],
        help="encoder (task heads), causal-lm (generation) or seq2seq (generation on an "
        "encoder-decoder such as T5)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--max-batch", type=int, default=32, help="most rows per model call")
    p.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="how long a batch waits to fill up"
    )
    p.add_argument("--max-inputs", type=int, default=64, help="most inputs per request")
    p.add_argument("--max-chars", type=int, default=10_000, help="most characters per input")
    p.add_argument(
        "--max-new-tokens", type=int, default=512, help="largest generation length allowed"
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        help="largest request body (default: 6 x --max-inputs x --max-chars + 64 KiB)",
    )
    p.add_argument(
        "--naive",
        action="store_true",
        help="baseline: one request at a time, no batching (for benchmarks)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, help="torch threads (default: $ADAPTERKIT_THREADS)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the base, rows routed by adapter index: one graph for every mix "
        "(the first batches compile; prefix and prompt bundles are skipped)",
    )
    p.add_argument(
        "--quantize",
        choices=QUANTIZE_CHOICES,
        help="load the base quantized (bitsandbytes), as bundles trained with --quantize need",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="precision of task-head forwards: auto (bf16 autocast on a CPU with native bf16 "
        "or a GPU that supports it, else fp32), fp32, bf16, fp16; generation runs fp32",
    )

"""Training compositions: ``train --fuse A B ...`` and ``train --stack-on A ... --method M``.

``--fuse`` trains an AdapterFusion (Pfeiffer et al. 2021) over frozen trained adapters:
only the attention in each layer and a new head for the data's task learn. ``--stack-on``
trains a new adapter of ``--method`` that runs on the output of the frozen bundles (a
domain adapter under a task adapter, say). Either way the run's method becomes a
composition (``fusion`` or ``stack``) whose parts are the bundles, read here before the
base loads, and whose frozen parts' weights are loaded into the new adapter once it is
built. The bundle written records each part in ``parents`` (relation ``part``).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from adapterkit.errors import AdapterkitError
from adapterkit.files import check_not_over_inputs
from adapterkit.inject import resolve_targets
from adapterkit.lifecycle.compose_parts import describe_layers, part_tensors, read_parts
from adapterkit.methods import AdapterConfig, make_config
from adapterkit.methods.compose.config import TRAINED_PART_METHODS
from adapterkit.model import AdaptedModel


def composition_method(options: Any, default_method: str) -> tuple[str, dict[str, Any]]:
    """(method, method options) of a run with ``--fuse`` or ``--stack-on``: ``fusion`` or
    ``stack``, with the parts' records (read from their bundles, weights not yet).

    Raises:
        AdapterkitError: One line for options that do not go together and for parts that
            do not compose (see :func:`~adapterkit.lifecycle.compose_parts.read_parts`).
    """
    flag = "--fuse" if options.fuse else "--stack-on"
    if options.fuse and options.stack_on:
        raise AdapterkitError("--fuse and --stack-on are two kinds of composition; pick one")
    paths = options.fuse or options.stack_on
    check_not_over_inputs(
        options.output, "--output", {f"{flag} bundle {i}": p for i, p in enumerate(paths, 1)}
    )
    if options.init_from:
        raise AdapterkitError(
            f"{flag} starts a new composition from its bundles; --init-from continues one "
            "bundle: drop one of them"
        )
    method, given = options.method, dict(options.method_options)
    stored = given.pop("parts", None)
    if stored is not None:  # a run's config.yaml read back: derive it all again
        for key in ("mode", *(f.name for f in fields(AdapterConfig))):
            given.pop(key, None)
        if method == "stack" and stored and stored[-1].get("sha256") is None:
            method, given = stored[-1]["method"], dict(stored[-1].get("config") or {})
    if options.fuse:
        if method not in (None, "fusion"):
            raise AdapterkitError(
                f"--fuse trains a fusion of its bundles, not an adapter of method '{method}'; drop "
                "--method (--stack-on trains a new adapter on top of bundles)"
            )
        if given:
            raise AdapterkitError(
                f"--fuse trains only the fusion and a head; method option(s) "
                f"{', '.join(sorted(given))} apply to the parts, which keep their own: drop them"
            )
        parts = read_parts(options.fuse, "--fuse", minimum=2, with_tensors=False)
        return "fusion", {"parts": [part.entry() for part in parts]}
    method = method or default_method
    if method in ("fusion", "stack", "average", "composition"):
        raise AdapterkitError(
            f"--stack-on trains a new adapter on top of its bundles; --method names its "
            f"method ({', '.join(TRAINED_PART_METHODS)} or a preset), not {method}"
        )
    new = make_config(method, **given)
    if new.method == "adalora":
        raise AdapterkitError(
            "--stack-on: AdaLoRA's rank schedule runs only for an adapter trained on its own; "
            "stack a lora or dora adapter, or train the AdaLoRA adapter alone and compose it"
        )
    if new.method not in TRAINED_PART_METHODS:
        raise AdapterkitError(
            f"--stack-on: the new adapter is {method}; a stack takes "
            f"{', '.join(TRAINED_PART_METHODS)} adapters and their presets (houlsby, pfeiffer, "
            "parallel)"
        )
    parts = read_parts(
        options.stack_on, "--stack-on", minimum=1, with_tensors=False, same_layers=True
    )
    trained = {"method": new.method, "config": new.to_dict(), "name": None, "sha256": None}
    return "stack", {"parts": [*(part.entry() for part in parts), trained]}


def part_paths(options: Any) -> tuple[str, list[str]]:
    """(flag, bundle paths) of a composition run; an empty list for any other run."""
    if getattr(options, "fuse", None):
        return "--fuse", list(options.fuse)
    if getattr(options, "stack_on", None):
        return "--stack-on", list(options.stack_on)
    return "", []


def rate_method(options: Any) -> str:
    """The method whose default learning rate a run takes: a stack's new adapter's."""
    if getattr(options, "stack_on", None):
        return options.method_options["parts"][-1]["method"]
    return options.method


def check_parts_fit(model: AdaptedModel, options: Any) -> None:
    """Refuse parts made for another base than the run's, and a stacked adapter that would
    adapt other layers than its parts (before anything is written)."""
    flag, paths = part_paths(options)
    if not paths:
        return
    parts = read_parts(paths, flag, minimum=1, with_tensors=False)
    for place, part in enumerate(parts, start=1):
        try:
            model.check_bundle_base(part.record, part.path)
        except AdapterkitError as exc:
            raise AdapterkitError(f"{flag}: bundle {place}: {exc}") from None
    if options.stack_on:
        new = make_config(options.method, **options.method_options).part_configs()[-1]
        mine, theirs = resolve_targets(model.base, new), parts[0].record.get("targets", [])
        if mine != theirs:
            raise AdapterkitError(
                f"--stack-on: the new {new.method} adapter would adapt "
                f"{describe_layers(mine, theirs)}, the bundles {describe_layers(theirs, mine)}; "
                "a stack adapts the same layers (pick a --method or --target-modules that match)"
            )


def load_parts(model: AdaptedModel, name: str, options: Any) -> list[dict[str, Any]]:
    """Load the frozen parts' weights into composition ``name``; returns their ``parents``
    entries (none for a run without parts).

    Raises:
        AdapterkitError: A part's bundle changed since the run read it.
    """
    flag, paths = part_paths(options)
    if not paths:
        return []
    parts = read_parts(paths, flag, minimum=1)
    expected = [part["sha256"] for part in options.method_options["parts"][: len(parts)]]
    for place, (part, sha) in enumerate(zip(parts, expected, strict=True), start=1):
        if part.parent()["sha256"] != sha:
            raise AdapterkitError(f"{flag}: bundle {place} ({part.path}) changed during the run")
    own = {**model.adapter_parameters(name), **model.head_parameters(name)}
    start = {key: param.detach() for key, param in own.items()}
    start.update(part_tensors(parts))
    model.load_weights(name, start, paths[0])
    return [part.parent() for part in parts]


__all__ = [
    "check_parts_fit",
    "composition_method",
    "load_parts",
    "part_paths",
    "rate_method",
]

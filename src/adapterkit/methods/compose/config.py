"""Configuration of compositions: trained adapters stacked, averaged or fused.

A composition names its parts by their records: each part's method and method config
(which build its modules), its name, the sha256 of the weights file it came from and the
layers it adapts. A part without a sha256 is trained together with the composition (the
new adapter of a stack); the others stay frozen. Parts may adapt different layers: the
composition then adapts every layer one of them does, each layer composing the parts
that adapt it. A composition's bundle holds every part's weights, so it
loads and serves as any one adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from adapterkit.errors import AdapterkitError
from adapterkit.methods.base import AdapterConfig, AdapterModule, BaseWeights, LayerSpec

MODES = ("fusion", "stack", "average")
PART_METHODS = ("bottleneck", "lora", "ia3", "dora", "adalora")
"""Methods a composition takes as parts: those whose modules wrap a leaf layer's output
(prompt or prefix methods would not). IA3's and DoRA's hooks (``adapts_input``,
``reads_base``) are served by the composition module itself. An AdaLoRA part comes from a
bundle, at the ranks it kept; a stack never trains one (see :data:`TRAINED_PART_METHODS`)."""
TRAINED_PART_METHODS = ("bottleneck", "lora", "ia3", "dora")
"""Methods of the part a stack trains: AdaLoRA's rank schedule runs only for an adapter
trained on its own, and without it AdaLoRA would train as a plain SVD-form LoRA."""
PART_KEYS = frozenset({"method", "config", "name", "sha256", "targets"})


@dataclass
class CompositionConfig(AdapterConfig):
    """Adapters combined per layer: ``fusion`` (a learned attention over their outputs),
    ``stack`` (each one on the previous one's output) or ``average`` (the mean output)."""

    # Set by the presets (fusion, stack, average) and by --fuse / --stack-on, so no flag.
    mode: str = field(default="fusion", metadata={"flag": None, "choices": MODES})
    """fusion, stack or average."""

    parts: list[dict[str, Any]] = field(default_factory=list, metadata={"flag": None})
    """The parts, in order: each a mapping of method, config, name, sha256 (None for a
    part trained with the composition) and targets (the layers it adapts; None: every
    layer of the composition)."""

    weights: list[float] | None = field(default=None, metadata={"flag": None})
    """average: one weight per part, normalised to sum 1 (None: equal weights)."""

    method: ClassVar[str] = "composition"

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.parts) < 2:
            raise AdapterkitError(
                f"a {self.mode} composition needs at least 2 parts, got {len(self.parts)}: "
                "train one with --fuse A B or --stack-on A, or write one with adapterkit compose"
            )
        self.check_weights()
        configs = self.part_configs()
        if self.target_modules is None and self.layers is None:
            union = self.union_of_targets()
            if union is not None:  # parts on different layers: the composition is on all
                self.target_modules = union
            else:  # the first part's patterns find every part's layers again on the base
                self.target_modules = configs[0].target_modules
                self.layers = configs[0].layers

    def check_weights(self) -> None:
        """Refuse weights outside an average, of another count than the parts, or summing
        to 0 (no normalised average)."""
        if self.weights is None:
            return
        if self.mode != "average":
            raise AdapterkitError(f"weights apply to an average composition, not a {self.mode}")
        if len(self.weights) != len(self.parts):
            raise AdapterkitError(
                f"{len(self.weights)} weight(s) for {len(self.parts)} parts; give one per part"
            )
        if sum(self.weights) == 0:
            raise AdapterkitError("the weights sum to 0, so they have no normalised average")

    def union_of_targets(self) -> list[str] | None:
        """Every layer some part adapts, in first-seen order, when the parts' recorded
        layers differ; None when they agree (or none are recorded)."""
        recorded = [part.get("targets") for part in self.parts]
        lists = [targets for targets in recorded if targets is not None]
        if len(lists) < 2 or all(targets == lists[0] for targets in lists):
            return None
        return list(dict.fromkeys(name for targets in lists for name in targets))

    def part_configs(self) -> list[AdapterConfig]:
        """Each part's method config, checked.

        Raises:
            AdapterkitError: A part record with unknown keys, or of a method a composition
                does not take.
        """
        from adapterkit.methods import config_from_dict

        configs = []
        for place, part in enumerate(self.parts, start=1):
            unknown = sorted(set(part) - PART_KEYS)
            if unknown:
                raise AdapterkitError(
                    f"composition part {place}: unknown key(s) {', '.join(unknown)}"
                )
            method = part.get("method")
            if method not in PART_METHODS:
                raise AdapterkitError(
                    f"composition part {place} is of method '{method}'; compositions take "
                    f"{', '.join(PART_METHODS)} parts"
                )
            config = part.get("config") or {}
            if not isinstance(config, dict):
                raise AdapterkitError(f"composition part {place}: config must be a mapping")
            targets = part.get("targets")
            if targets is not None and not (
                isinstance(targets, list) and all(isinstance(t, str) for t in targets)
            ):
                raise AdapterkitError(f"composition part {place}: targets must be layer names")
            configs.append(config_from_dict(method, config))
        return configs

    def trained_parts(self) -> list[bool]:
        """Per part, whether it trains with the composition (it has no weights file yet)."""
        return [part.get("sha256") is None for part in self.parts]

    def roles(self) -> list[str]:
        return self.part_configs()[0].roles()

    def needs_block_input(self) -> bool:
        return any(config.needs_block_input() for config in self.part_configs())

    def build_layer(self, spec: LayerSpec, base: BaseWeights) -> AdapterModule:
        from adapterkit.methods.compose.layer import CompositionAdapter

        # A part builds only on the layers it adapts (all, when it records none).
        present = {
            place: config.build_layer(spec, base)
            for place, (config, part) in enumerate(
                zip(self.part_configs(), self.parts, strict=True)
            )
            if part.get("targets") is None or spec.name in part["targets"]
        }
        trained = self.trained_parts()
        return CompositionAdapter(
            self.mode,
            present,
            {place: trained[place] for place in present},
            len(self.parts),
            spec.out_features,
            weights=None if self.weights is None else [w / sum(self.weights) for w in self.weights],
        )

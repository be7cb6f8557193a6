"""What every adapter method provides: a config dataclass and a module.

A method module is called by an :class:`~adapterkit.inject.AdapterHost` with the
input of the wrapped layer, that layer's output, and (for methods that read the
block input, such as parallel adapters) the tapped input of the block. It returns
the new output. Two optional hooks cover the methods that need more, still without
the host knowing any method by name:

- ``adapts_input``: the module rescales the layer's *input* before the frozen layer
  runs (IA3 on the FFN down-projection), through :meth:`AdapterModule.adapt_input`;
- ``reads_base``: the module reads the frozen weight itself (DoRA's column norms), given
  as :class:`BaseWeights` in the ``base`` keyword.

Keeping that one signature lets the host stay method-agnostic: adding a method touches
only its own folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from adapterkit.checked import check_fields
from adapterkit.errors import AdapterkitError


class BaseWeights(NamedTuple):
    """A frozen layer's weight as (out, in), whatever its storage (GPT-2's Conv1D keeps
    (in, out)), and its bias (out,) or None."""

    weight: torch.Tensor
    bias: torch.Tensor | None


@dataclass(frozen=True)
class LayerSpec:
    """What a method's build step knows of one target layer."""

    name: str
    """Dotted module name of the layer."""
    in_features: int
    out_features: int
    tap_features: int | None
    """Width of the tapped FFN block input (methods that read it), else None."""
    roles: frozenset[str] = frozenset()
    """The default target roles (``inject.ArchDefaults`` fields) whose built-in pattern
    matches this layer on its architecture; empty on an architecture without defaults."""


@dataclass
class AdapterConfig:
    """Fields shared by all methods.

    The fields of every registered method's config are also flags of ``adapterkit
    train`` and keys of its YAML ``--config`` file, with the docstring under a field as
    the flag's help. ``field(metadata=...)`` says what cannot be inferred (see
    :mod:`adapterkit.cli.fields`): ``flag`` for another spelling (``None``: no flag, a
    YAML key only), ``dest``, ``choices``. Fields of the same name in two methods must
    agree on their flag.
    """

    target_modules: list[str] | None = None
    """Module names, name suffixes or full-match regexes to adapt; ``None`` uses the
    built-in default for the architecture."""

    layers: list[int] | None = field(default=None, metadata={"min": 0})
    """Adapt only these layer (block) indices; ``None`` adapts every layer."""

    train_bias: bool = False
    """Also learn a change of every bias in the transformer blocks' linear layers (BitFit),
    for this adapter's rows only: the shared base stays frozen. With ``--method head`` this
    is BitFit itself."""

    train_norms: bool = False
    """Also learn a rescaling and shift of every normalisation layer (LayerNorm, RMSNorm), as
    Houlsby et al. train beside their adapters; for this adapter's rows only."""

    method: ClassVar[str] = ""

    def __post_init__(self) -> None:
        """Check every field's type and range (subclasses call this first)."""
        check_fields(self, where=f"{self.method}: ")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored in a bundle's ``adapterkit.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AdapterConfig:
        """Rebuild a config, refusing keys this version does not know."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise AdapterkitError(
                f"{cls.__name__} has no field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def roles(self) -> list[str]:
        """Which default target roles this method adapts (see ``inject.ARCH_DEFAULTS``)."""
        raise NotImplementedError

    def needs_block_input(self) -> bool:
        """Whether the module reads the block input tapped from another layer."""
        return False

    def reads_block_input(self, target: str) -> bool:
        """Whether the module on layer ``target`` reads the tapped block input: by default
        every module does when :meth:`needs_block_input` says so. A method that puts other
        modules on some layers (MAM: prefixes on the attention's key/value projections,
        which run before the FFN's input exists) tells them apart here."""
        return self.needs_block_input()

    def target_layers(self, model: nn.Module) -> list[str] | None:
        """Dotted names of the layers to host this method when they are not found by
        target patterns (prompt tuning: the input embedding layer); None (the default)
        resolves ``target_modules`` or the architecture's patterns for :meth:`roles`."""
        return None

    def soft_tokens(self) -> int:
        """Positions this method puts in front of every input (prompt tuning's virtual
        tokens), which a run's ``max_length`` leaves room for; 0 (the default) for methods
        that lengthen nothing the position embeddings see."""
        return 0

    def prepare(self, tokenizer: Any, max_length: int, context: int | None) -> AdapterConfig:
        """This config fitted to a run, before its adapter is built: the run's tokenizer,
        the task's ``max_length`` and the base's ``context`` positions (None: no limit).
        Refuses what cannot fit with an ``AdapterkitError``; most methods need nothing."""
        return self

    def build(self, in_features: int, out_features: int, tap_features: int | None) -> AdapterModule:
        """Create the module for one wrapped layer."""
        raise NotImplementedError

    def build_layer(self, spec: LayerSpec, base: BaseWeights) -> AdapterModule:
        """Create the module for the layer ``spec`` over the frozen ``base``.

        The injector calls this; the default builds from the widths alone. Methods whose
        module depends on the layer's role or initialises from the frozen weight override it.
        """
        return self.build(spec.in_features, spec.out_features, spec.tap_features)

    def prepare_model(self, model: nn.Module, targets: list[str]) -> None:
        """Check ``model`` before its layers ``targets`` are wrapped, and set up what the
        method needs beyond them. Methods that act outside the wrapped layers (prefix tuning,
        inside attention) refuse here a model they cannot reach. The default does nothing.
        """

    def bundle_config(self) -> AdapterConfig:
        """The config a saved bundle records: this one, unless the modules save a folded form
        (see :meth:`AdapterModule.bundle_tensors`) that another config builds."""
        return self

    def training_controller(
        self, modules: dict[str, AdapterModule], total_steps: int
    ) -> TrainingController | None:
        """What steers this adapter's training beyond its gradients, or None (most methods).

        The trainer calls this once per job, with the adapter's module on each adapted
        layer (by layer name) and the job's optimizer steps in all, and drives what it
        returns: no callback for the user to remember (AdaLoRA's rank schedule).
        """
        return None


class TrainingController:
    """A method's part in its own training, driven by the trainer for one job.

    The defaults do nothing; a method overrides what it needs. Under several processes
    every one holds its own controller and sees the same summed gradients, so every one
    takes the same decisions.
    """

    def extra_loss(self) -> torch.Tensor | None:
        """A term added to the job's loss at every batch (a regulariser), or None."""
        return None

    def after_step(self, step: int) -> None:
        """Called after optimizer step ``step`` (1 for the first), gradients still present."""

    @property
    def settled(self) -> bool:
        """Whether the adapter now has its final shape: evaluations before that are not
        candidates for the best checkpoint, nor count for early stopping."""
        return True

    def finish(self) -> str | None:
        """Called once training ended (and the best checkpoint is back): make the adapter
        what its bundle stores; returns a line for the log, or None."""
        return None

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """What a resumed run needs of this controller, saved with each checkpoint."""
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take back what :meth:`state_tensors` saved (a resumed run)."""


class AdapterModule(nn.Module):
    """Base class of the per-layer adapter modules."""

    mergeable: ClassVar[bool] = False
    reads_base: ClassVar[bool] = False
    """When set, the host passes the frozen layer's :class:`BaseWeights` as ``base=`` to
    :meth:`forward` and :meth:`forward_rows`."""
    adapts_input: bool = False
    """When set (per instance), the host runs the frozen layer on :meth:`adapt_input` of its
    input for this adapter's rows."""
    owns_output: ClassVar[bool] = False
    """When set, the host passes ``owned=True`` to :meth:`forward` and :meth:`forward_rows`:
    ``base_out`` is the frozen layer's fresh output, which nothing else reads, so where
    autograd records nothing the module may add into it in place. A subclass that reads
    ``base_out`` after its parent's forward (a gate) must leave it unset, and so must any
    module that passes ``base_out`` on to others (a composition)."""
    routes_by_index: ClassVar[bool] = True
    """Whether a host can run this module under index routing (a compiled forward that
    routes rows by an adapter index tensor, see :meth:`AdaptedModel.compile`). Modules that
    act outside their layer and read their rows by name (prefix, prompt) cannot."""

    def forward(
        self, x: torch.Tensor, base_out: torch.Tensor, block_input: torch.Tensor | None
    ) -> torch.Tensor:
        raise NotImplementedError

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters training updates, by ``named_parameters`` name: all of them,
        unless a module holds frozen parts (a composition's trained adapters)."""
        return dict(self.named_parameters())

    def bundle_tensors(self) -> dict[str, torch.Tensor] | None:
        """What a saved bundle stores of this module, keyed as the parameters of the module
        that :meth:`AdapterConfig.bundle_config` builds; None (the default): its parameters.
        A method that trains a form serving does not need (prefix tuning's
        reparameterisation MLP) returns the folded tensors here."""
        return None

    def adapt_input(self, x: torch.Tensor) -> torch.Tensor:
        """The input the frozen layer sees for this adapter's rows (modules with ``adapts_input``)."""
        raise NotImplementedError

    def delta_weight(self) -> torch.Tensor:
        """An additive update of the frozen (out, in) weight (additive mergeable methods)."""
        raise NotImplementedError

    def merged_weights(self, base: BaseWeights) -> BaseWeights:
        """The frozen weights with this adapter folded in (called in float64).

        The default adds :meth:`delta_weight`; methods that scale override it.
        """
        return BaseWeights(base.weight + self.delta_weight().to(base.weight.dtype), base.bias)

    def unmerged_weights(self, base: BaseWeights) -> BaseWeights:
        """Undo :meth:`merged_weights` on weights it produced (called in float64)."""
        return BaseWeights(base.weight - self.delta_weight().to(base.weight.dtype), base.bias)

    @classmethod
    def forward_rows(
        cls,
        modules: list[AdapterModule],
        slot: torch.Tensor,
        x: torch.Tensor,
        base_out: torch.Tensor,
        block_input: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """Apply a different module of this class to each row in one batched computation.

        ``slot`` (B,) gives each row's index into ``modules``, or -1 for rows that keep
        ``base_out``. Returns None when these modules cannot be batched together (then
        the host runs them one group of rows at a time); the default never batches.
        """
        return None

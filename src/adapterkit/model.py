"""AdaptedModel: one frozen base, any number of named adapters and their heads.

Which adapter runs is chosen per call (``adapter="name"`` for the whole batch, or
one name per row), never stored as global state that concurrent callers share.
``activate()`` only sets the fallback for calls that pass no ``adapter``
argument; serving code always passes one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from adapterkit.bundle import check_adapter_name
from adapterkit.errors import AdapterkitError
from adapterkit.fingerprint import fingerprint_model, is_adapter_parameter
from adapterkit.heads import Head
from adapterkit.host import AdapterHost
from adapterkit.inject import inject_adapter, remove_adapter
from adapterkit.methods import AdapterConfig
from adapterkit.model_bundles import BundleIO
from adapterkit.prompting import prompted
from adapterkit.routing import (
    Routing,
    current_routing,
    indexed_routing,
    make_routing,
    traced_routing,
    use_routing,
)

_UNSET: Any = object()
AdapterChoice = str | None | Sequence[str | None]


@dataclass(frozen=True)
class ParameterReport:
    """Trainable versus total parameter counts."""

    trainable: int
    total: int

    @property
    def percent(self) -> float:
        """Trainable share of all parameters, in percent."""
        return 100.0 * self.trainable / max(self.total, 1)

    def __str__(self) -> str:
        return f"trainable params: {self.trainable:,} || all params: {self.total:,} || trainable%: {self.percent:.4f}"


class AdaptedModel(BundleIO, nn.Module):
    """A frozen transformers model with named adapters injected by wrapping leaf layers.

    Args:
        base: Any ``transformers`` model (headless encoder, causal LM, seq2seq ...).
        name_or_path: How the base was loaded; stored in bundles for messages.
        freeze_base: Set ``requires_grad=False`` on every base parameter.
    """

    def __init__(
        self, base: nn.Module, *, name_or_path: str | None = None, freeze_base: bool = True
    ) -> None:
        super().__init__()
        self.base = base
        config = getattr(base, "config", None)
        self.base_name = (
            name_or_path or getattr(config, "_name_or_path", None) or type(base).__name__
        )
        self.base_fingerprint = fingerprint_model(base)  # before any wrapping
        self.heads = nn.ModuleDict()
        self.configs: dict[str, AdapterConfig] = {}
        self.targets: dict[str, list[str]] = {}
        self.task_info: dict[str, dict[str, Any]] = {}
        self.default_adapter: str | None = None
        self.sharded_base = False
        """Whether the base is sharded over processes (``train --shard-base``): then every
        forward takes them all, so generation decodes on each until all are done."""
        self.stored_low: torch.dtype | None = None
        """The dtype :meth:`store_base_low` keeps the frozen linear layers in (None: as loaded)."""
        self.train(base.training)  # keep the caller's train/eval mode
        if freeze_base:
            base.requires_grad_(False)

    # Managing adapters ------------------------------------------------------------------
    @property
    def adapter_names(self) -> list[str]:
        """Names of the adapters in this model, in the order they were added."""
        return list(self.configs)

    def add_adapter(
        self,
        name: str,
        config: AdapterConfig,
        head: Head | None = None,
        task: dict[str, Any] | None = None,
    ) -> list[str]:
        """Inject a new adapter (and optionally its task head); returns the adapted layer names."""
        check_adapter_name(name)
        if name in self.configs:
            raise AdapterkitError(f"an adapter named '{name}' already exists; delete it first")
        if hasattr(nn.ModuleDict(), name):  # e.g. "train", "eval": ModuleDict attributes
            raise AdapterkitError(
                f"adapter name '{name}' is reserved (a torch Module attribute); pick another"
            )
        try:
            self.targets[name] = inject_adapter(self.base, name, config)
        except BaseException:
            remove_adapter(self.base, name)  # layers wrapped before the failure
            raise
        self.configs[name] = config
        self.task_info[name] = dict(task or {})
        if self.stored_low is not None:  # made in the layers' low dtype: back to full precision
            for host in self._hosts_of(name):
                for table in (host.adapters, host.base_tuning):
                    if name in table:
                        table[name].float()
        if head is not None:
            self.set_head(name, head)
        if self.__dict__.get("_index_routing"):
            try:
                self._check_index_routable()
            except AdapterkitError:
                self.delete_adapter(name)
                raise
        return self.targets[name]

    def delete_adapter(self, name: str) -> None:
        """Remove an adapter and its head; unwraps layers that no longer host anything."""
        self._require(name)
        remove_adapter(self.base, name)
        for table in (self.configs, self.targets, self.task_info):
            table.pop(name, None)
        if name in self.heads:
            del self.heads[name]
        if self.default_adapter == name:
            self.default_adapter = None

    def set_head(self, name: str, head: Head) -> None:
        """Attach a task head to adapter ``name`` (replacing any previous one)."""
        self._require(name)
        if self.__dict__.get("_index_routing") and head.reads_routing:
            raise AdapterkitError(
                f"the {head.head_type} head cannot be routed by index in a compiled model; "
                "compile without index routing"
            )
        reference = next(self.base.parameters())
        head.train(self.training)
        self.heads[name] = head.to(device=reference.device, dtype=reference.dtype)
        head.attach(self.base, lambda: dict(self.heads.items()))

    def activate(self, name: str | None) -> None:
        """Set the adapter used by calls that pass no ``adapter`` argument (None = base only)."""
        if name is not None:
            self._require(name)
        self.default_adapter = name

    @contextlib.contextmanager
    def disable_adapters(self) -> Iterator[None]:
        """Within this block, calls in this thread/task run the base alone, whatever they ask for."""
        with use_routing(Routing(disabled=True)):
            yield

    def _require(self, name: str) -> None:
        if name not in self.configs:
            known = ", ".join(self.configs) or "none"
            raise AdapterkitError(f"no adapter named '{name}' (loaded: {known})")

    # Parameters ---------------------------------------------------------------------------
    def adapter_parameters(
        self, name: str, trainable_only: bool = False
    ) -> dict[str, nn.Parameter]:
        """The adapter's own parameters, keyed as in a bundle (``adapter.<layer>.<param>``).

        ``trainable_only`` leaves out what its modules keep frozen (a composition's parts
        loaded from bundles, see ``AdapterModule.trainable_parameters``).
        """
        self._require(name)
        params: dict[str, nn.Parameter] = {}
        for host_name, host in self.base.named_modules():
            if not isinstance(host, AdapterHost):
                continue
            if name in host.adapters:
                module = host.adapters[name]
                own = module.trainable_parameters() if trainable_only else module.named_parameters()
                for pname, param in dict(own).items():
                    params[f"adapter.{host_name}.{pname}"] = param
            if name in host.base_tuning:  # --train-bias / --train-norms
                for pname, param in host.base_tuning[name].named_parameters():
                    params[f"adapter.{host_name}.base_tuning.{pname}"] = param
        return params

    def head_parameters(self, name: str) -> dict[str, nn.Parameter]:
        """The head's parameters keyed ``head.<param>`` (empty without a head)."""
        if name not in self.heads:
            return {}
        return {f"head.{k}": v for k, v in self.heads[name].named_parameters()}

    def train_adapter(self, name: str, train_head: bool = True) -> None:
        """Freeze everything, then make only ``name``'s adapter (and its head) trainable."""
        self._require(name)
        self.requires_grad_(False)
        for param in self.adapter_parameters(name, trainable_only=True).values():
            param.requires_grad_(True)
        if train_head:
            for param in self.head_parameters(name).values():
                param.requires_grad_(True)

    def parameter_report(self, name: str | None = None) -> ParameterReport:
        """Trainable/total counts; with ``name``, the total is base + that adapter + its head,
        of which the adapter's trainable parameters and the head train."""
        base_total = sum(
            p.numel() for n, p in self.base.named_parameters() if not is_adapter_parameter(n)
        )
        if name is None:
            trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
            return ParameterReport(trainable, sum(p.numel() for p in self.parameters()))
        head = sum(p.numel() for p in self.head_parameters(name).values())
        adapter = sum(p.numel() for p in self.adapter_parameters(name).values())
        trained = sum(p.numel() for p in self.adapter_parameters(name, True).values())
        return ParameterReport(trained + head, base_total + adapter + head)

    # Running ------------------------------------------------------------------------------
    def _routing(self, adapter: AdapterChoice) -> Routing:
        outer = current_routing()
        if outer is not None and outer.disabled:  # inside disable_adapters(): base only, always
            return outer
        chosen = self.default_adapter if adapter is _UNSET else adapter
        routing = make_routing(chosen, device=next(self.base.parameters()).device)
        for used in routing.names():
            self._require(used)
        return routing

    def forward(self, *args: Any, adapter: AdapterChoice = _UNSET, **kwargs: Any) -> Any:
        """Run the base model with ``adapter`` (one name, None, or one name per row)."""
        routing = self._routing(adapter)
        compiled = self.__dict__.get("_compiled_base")
        # Prompt tuning lengthens the input and cuts the outputs back (else a no-op).
        with (
            self._stored_autocast(),
            use_routing(routing),
            prompted(self.base, routing, kwargs) as call,
        ):
            if compiled is None:
                return call.outputs(self.base(*args, **call.kwargs))
            with traced_routing(self._traced(routing, args, call.kwargs)):
                return call.outputs(compiled(*args, **call.kwargs))

    def compile(self, index_routing: bool = False, **options: Any) -> None:
        """Run :meth:`forward` through ``torch.compile`` of the base (``dynamic=True`` unless
        ``options`` say otherwise); the routing becomes a value the compiled graph traces and
        guards on, so wrapped layers cause no graph break. Compiled calls run one at a time
        (see :mod:`adapterkit.routing`); :meth:`generate` stays eager.

        By default the graph is specialised on the adapter names a call uses: a call with
        another adapter or another mix compiles again (fine for training, where they stay
        the same). ``index_routing`` (for servers) routes rows by an index tensor over every
        adapter of the model instead, so one graph serves every mix; prefix and prompt
        tuning, and entity-pair heads, read rows by name and are refused then."""
        if index_routing:
            self._check_index_routable()
        options.setdefault("dynamic", True)
        # Kept out of the module tree: the compiled wrapper shares the base's parameters and
        # must not add a second copy of their names to state_dict().
        self.__dict__["_compiled_base"] = torch.compile(self.base, **options)
        self.__dict__["_index_routing"] = index_routing

    def _check_index_routable(self) -> None:
        for host in self.base.modules():
            if isinstance(host, AdapterHost):
                for name, module in host.adapters.items():
                    if not module.routes_by_index:
                        raise AdapterkitError(
                            f"adapter '{name}' ({self.configs[name].method}) cannot be routed "
                            "by index in a compiled model; compile without index routing"
                        )
        for name, head in self.heads.items():
            if head.reads_routing:
                raise AdapterkitError(
                    f"the {head.head_type} head of adapter '{name}' cannot be routed by index "
                    "in a compiled model; compile without index routing"
                )

    def _traced(self, routing: Routing, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Routing:
        """The routing a compiled forward traces: ``routing`` itself, or its index form."""
        if not self.__dict__.get("_index_routing") or routing.disabled:
            return routing
        first = kwargs.get("input_ids", kwargs.get("inputs_embeds", args[0] if args else None))
        if not isinstance(first, torch.Tensor):
            return routing  # no batch to index: by name, as without index routing
        return indexed_routing(routing, tuple(self.configs), first.shape[0], first.device)

    def generate(self, *args: Any, adapter: AdapterChoice = _UNSET, **kwargs: Any) -> Any:
        """``base.generate`` with the routing held for every decoding step."""
        routing = self._routing(adapter)
        if self.sharded_base:  # transformers' switch for sharded bases (its FSDP and ZeRO-3)
            kwargs.setdefault("synced_gpus", True)
        with use_routing(routing), prompted(self.base, routing, kwargs, generating=True) as call:
            return call.sequences(self.base.generate(*args, **call.kwargs))

    def head_logits(
        self, name: str, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Apply adapter ``name``'s head to hidden states (B, T, C)."""
        if name not in self.heads:
            raise AdapterkitError(f"adapter '{name}' has no head")
        with self._stored_autocast():
            return self.heads[name](hidden, attention_mask)

    def _stored_autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to the dtype of a base stored low (:meth:`store_base_low`) when the
        caller opened none: its layers cannot multiply float32 inputs on their own."""
        if self.stored_low is None:
            return contextlib.nullcontext()
        device = next(self.base.parameters()).device.type
        if torch.is_autocast_enabled(device):
            return contextlib.nullcontext()
        return torch.autocast(device, dtype=self.stored_low)

    def store_base_low(self, dtype: torch.dtype) -> int:
        """Keep the frozen base's float32 linear layers in ``dtype``, for inference under
        autocast to that dtype; returns how many layers changed.

        Autocast casts every float32 weight it multiplies on every call. On the CPU that
        fixed cost made a batch-1 MiniLM forward slower in bf16 than in fp32
        (docs/bf16_inference.md). Stored once, the linear layers give the same bits, since
        autocast rounds their weights the same way. Embeddings, norms, adapters and heads
        keep their dtype; adapters added later are made in float32. Inference only: merging
        is refused, and training needs the float32 base.
        """
        keep = {
            id(module)
            for host in self.base.modules()
            if isinstance(host, AdapterHost)
            for table in (host.adapters, host.base_tuning)
            for module in table.modules()
        }
        changed = 0
        for module in self.base.modules():
            weight = getattr(module, "weight", None)
            if (
                isinstance(module, nn.Linear | Conv1D)
                and id(module) not in keep
                and isinstance(weight, torch.Tensor)
                and weight.dtype == torch.float32
                and not any(p.requires_grad for p in module.parameters(recurse=False))
            ):
                module.to(dtype)
                changed += 1
        self.stored_low = dtype
        return changed

    # Merging ------------------------------------------------------------------------------
    def _hosts_of(self, name: str) -> list[AdapterHost]:
        self._require(name)
        return [m for m in self.base.modules() if isinstance(m, AdapterHost) and m.holds(name)]

    def merge_adapter(self, name: str) -> None:
        """Fold a mergeable adapter (LoRA, DoRA, AdaLoRA, IA3) into the frozen weights, for
        single-adapter deployment. All layers or none: a layer that refuses undoes the rest."""
        if self.stored_low is not None:
            raise AdapterkitError(
                f"adapter '{name}' cannot be merged into a base stored in {self.stored_low} for "
                "inference; load the base again to merge"
            )
        done: list[AdapterHost] = []
        try:
            for host in self._hosts_of(name):
                host.merge(name)
                done.append(host)
        except AdapterkitError:
            for host in done:
                host.unmerge()
            raise

    def unmerge_adapter(self, name: str) -> None:
        """Undo :meth:`merge_adapter`."""
        for host in self._hosts_of(name):
            if host.merged == name:
                host.unmerge()

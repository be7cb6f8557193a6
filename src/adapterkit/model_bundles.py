"""AdaptedModel's bundle round trip: what a bundle stores, and loading it back.

A mixin of :class:`~adapterkit.model.AdaptedModel`, kept apart from the adapter
management and routing in ``model.py``. The bundle's file format itself (atomic
writes, checksums, format version) lives in :mod:`adapterkit.bundle`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from adapterkit import bundle
from adapterkit.errors import AdapterkitError, BundleError
from adapterkit.fingerprint import describe, is_adapter_parameter
from adapterkit.heads import build_head, check_head_config
from adapterkit.host import AdapterHost
from adapterkit.methods import AdapterConfig, config_from_dict
from adapterkit.models import quantization_of

if TYPE_CHECKING:
    from torch import nn

    from adapterkit.heads import Head


def check_bundle_record(record: dict[str, Any], path: str | Path) -> AdapterConfig:
    """Check what a bundle's record says beyond its schema, without a base: the method's
    config (types, ranges), the head's arguments, and that the head has one output per
    label. Returns the method config.

    Raises:
        AdapterkitError: One line naming what does not fit.
    """
    try:
        config = config_from_dict(record["method"], record.get("config", {}))
        head = record.get("head")
        args = check_head_config(head["type"], head["config"]) if head else {}
    except AdapterkitError as exc:
        raise BundleError(f"{path}: {exc}") from None
    if head:
        task = record.get("task") or {}
        # A head added through the library without task info has no labels to check.
        labels, task_type = task.get("labels"), task.get("type")
        if "num_labels" in args and labels is None and task_type:
            raise BundleError(f"{path}: the head has {args['num_labels']} outputs but no labels")
        if "num_labels" in args and labels is not None and len(labels) != args["num_labels"]:
            raise BundleError(
                f"{path}: the head has {args['num_labels']} outputs but the task names "
                f"{len(labels)} labels"
            )
    return config


class BundleIO:
    """Saving adapters as bundles and loading bundles as adapters (mixed into AdaptedModel)."""

    # Provided by AdaptedModel.
    base: nn.Module
    base_name: str
    base_fingerprint: dict[str, Any]
    heads: nn.ModuleDict
    configs: dict[str, AdapterConfig]
    targets: dict[str, list[str]]
    task_info: dict[str, dict[str, Any]]

    if TYPE_CHECKING:

        def _require(self, name: str) -> None: ...
        def adapter_parameters(self, name: str) -> dict[str, nn.Parameter]: ...
        def head_parameters(self, name: str) -> dict[str, nn.Parameter]: ...
        def add_adapter(
            self, name: str, config: AdapterConfig, head: Head | None = None, task: Any = None
        ) -> list[str]: ...
        def delete_adapter(self, name: str) -> None: ...

    def base_parameters(self) -> dict[str, torch.Tensor]:
        """Base weights keyed ``base.<name>`` as in the unwrapped model (for full fine-tuning bundles)."""
        return {
            "base." + n.replace(".base_layer.", "."): p
            for n, p in self.base.named_parameters()
            if not is_adapter_parameter(n)
        }

    def bundle_contents(
        self,
        name: str,
        extra: dict[str, Any] | None = None,
        include_base: bool = False,
        folded: bool = False,
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """The config record and tensors a bundle of adapter ``name`` stores.

        ``include_base`` also stores every base weight (the ``full`` fine-tuning baseline).
        ``folded`` stores what serving needs, where a method trains more (prefix tuning's
        reparameterisation MLP: see ``AdapterModule.bundle_tensors``); a checkpoint that
        training resumes from keeps the unfolded form.
        """
        self._require(name)
        config = self.configs[name].bundle_config() if folded else self.configs[name]
        head = self.heads[name] if name in self.heads else None  # noqa: SIM401 (ModuleDict has no .get)
        record: dict[str, Any] = {
            "name": name,
            "method": config.method,
            "config": config.to_dict(),
            "targets": self.targets[name],
            "base_model": {
                "name_or_path": str(self.base_name),
                "fingerprint": self.base_fingerprint,
                "quantize": quantization_of(self.base),
            },
            "head": None if head is None else {"type": head.head_type, "config": head.head_config},
            "task": self.task_info.get(name, {}),
            "includes_base": include_base,
            **(extra or {}),
        }
        tensors = {**self.adapter_tensors(name, folded), **self.head_parameters(name)}
        if include_base:
            tensors.update(self.base_parameters())
        return record, tensors

    def adapter_tensors(self, name: str, folded: bool) -> dict[str, torch.Tensor]:
        """The adapter's tensors keyed as in a bundle; ``folded``: each module's
        :meth:`~adapterkit.methods.base.AdapterModule.bundle_tensors` where it has them."""
        tensors: dict[str, torch.Tensor] = dict(self.adapter_parameters(name))
        if not folded:
            return tensors
        for host_name, host in self.base.named_modules():
            if isinstance(host, AdapterHost) and name in host.adapters:
                module = host.adapters[name]
                own = module.bundle_tensors()
                if own is None:
                    continue
                prefix = f"adapter.{host_name}."
                for pname, _ in module.named_parameters():
                    del tensors[prefix + pname]
                tensors.update({prefix + key: value for key, value in own.items()})
        return tensors

    def save_adapter(
        self,
        name: str,
        path: str | Path,
        extra: dict[str, Any] | None = None,
        include_base: bool = False,
    ) -> Path:
        """Write adapter ``name`` with its head and task info as a bundle directory.

        ``include_base`` also stores every base weight (the ``full`` fine-tuning baseline).
        The bundle stores the folded form of methods that train more than they serve with
        (prefix tuning's MLP), and the config that builds it.
        """
        return bundle.write_bundle(
            path, *self.bundle_contents(name, extra, include_base, folded=True)
        )

    def load_adapter(self, path: str | Path, name: str | None = None) -> str:
        """Load a bundle written by :meth:`save_adapter` (or a PEFT adapter folder: LoRA, DoRA,
        IA3, with its head); returns the adapter's name here.

        Every field is checked before anything is built, and a load that fails at any
        point leaves no trace: the model is as it was before the call.
        """
        from adapterkit.interop.peft_import import is_peft_folder, peft_bundle

        if is_peft_folder(path):  # LoRA, DoRA or IA3 saved by PEFT: converted on the way in
            record, tensors = peft_bundle(path, self)  # type: ignore[arg-type]
            return self.load_contents(record, tensors, path, name or Path(path).resolve().name)
        record, tensors = bundle.read_bundle(path)
        return self.load_contents(record, tensors, path, name)

    def load_contents(
        self,
        record: dict[str, Any],
        tensors: dict[str, torch.Tensor],
        path: str | Path,
        name: str | None = None,
    ) -> str:
        """Load a bundle's record and tensors already in memory (a bundle read from ``path``,
        or another format converted to one); the checks and guarantees of :meth:`load_adapter`."""
        self.check_bundle_base(record, path)
        config = check_bundle_record(record, path)
        name = name or record.get("name") or Path(path).name
        head_info = record.get("head")
        if head_info:
            self.check_head_width(head_info["config"], path)
        head = build_head(head_info["type"], head_info["config"]) if head_info else None
        self.add_adapter(name, config, head=head, task=record.get("task"))
        try:
            self.load_weights(name, tensors, path)
        except BaseException:
            self.delete_adapter(name)
            raise
        return name

    def check_head_width(self, head_config: dict[str, Any], path: str | Path) -> None:
        """Refuse a head that reads hidden states of another width than this base's, before
        it is built (a bundle asking for a width of 10**7 would otherwise allocate TBs)."""
        hidden = getattr(self.base.config, "hidden_size", None)
        if hidden is not None and head_config.get("hidden_size", hidden) != hidden:
            raise BundleError(
                f"{path}: the head reads hidden states of width {head_config['hidden_size']}, "
                f"but this base's are {hidden} wide"
            )

    def check_bundle_base(self, record: dict[str, Any], path: str | Path) -> None:
        """Refuse a bundle fingerprinted for another base model, naming both sides."""
        theirs = record.get("base_model", {})
        wanted, have = theirs.get("quantize"), quantization_of(self.base)
        if wanted != have:
            # A quantized base has other weights and shapes than the checkpoint it came from.
            raise BundleError(
                f"{path}: bundle was trained on base '{theirs.get('name_or_path')}' "
                f"{f'quantized to {wanted}' if wanted else 'unquantized'}, but this base is "
                f"{f'quantized to {have}' if have else 'unquantized'}"
                + (f" (load it with --quantize {wanted})" if wanted else "")
            )
        fingerprint = theirs.get("fingerprint", {})
        # A full fine-tuning bundle replaces the weights, so only the structure must match.
        keys = ("structure",) if record.get("includes_base") else ("structure", "weights")
        same = all(fingerprint.get(k) == self.base_fingerprint[k] for k in keys)
        if not same:
            raise BundleError(
                f"{path}: bundle was made for base {describe(fingerprint, theirs.get('name_or_path'))}, "
                f"not this base {describe(self.base_fingerprint, str(self.base_name))}"
            )

    def load_weights(self, name: str, tensors: dict[str, torch.Tensor], path: str | Path) -> None:
        """Copy bundle tensors into adapter ``name`` (and its head, and the base when present)."""
        params = {**self.adapter_parameters(name), **self.head_parameters(name)}
        if any(key.startswith("base.") for key in tensors):
            params.update(self.base_parameters())
        missing = sorted(set(params) - set(tensors))
        unexpected = sorted(set(tensors) - set(params))
        if missing or unexpected:
            raise BundleError(
                f"{path}: weights do not fit the adapter config "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        with torch.no_grad():
            for key, param in params.items():
                if not tensors[key].is_floating_point():
                    raise BundleError(
                        f"{path}: tensor {key} holds {tensors[key].dtype} values, not floats"
                    )
                if tensors[key].shape != param.shape:
                    raise BundleError(
                        f"{path}: tensor {key} has shape {tuple(tensors[key].shape)}, expected {tuple(param.shape)}"
                    )
                param.copy_(tensors[key].to(param.dtype))

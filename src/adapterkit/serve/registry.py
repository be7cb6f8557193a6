"""Which adapters are loaded, what each can do, and safe names for bundle folders.

Every change to the model (loading or deleting an adapter) must run on the model
worker thread, the one that also runs forwards: wrapping layers while a forward
runs would corrupt it. Reads of the entry table happen on the event loop; single
dict operations are atomic under the GIL, and the worker re-checks names before
it runs a batch.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapterkit.bundle import ADAPTER_NAME, is_bundle_dir, read_bundle_config
from adapterkit.errors import AdapterkitError, BundleError
from adapterkit.interop.peft_import import is_peft_folder
from adapterkit.model import AdaptedModel
from adapterkit.models import load_base, load_tokenizer, pick_device
from adapterkit.padding import pad_token_id
from adapterkit.precision import inference_context, store_for_inference
from adapterkit.serve.settings import GENERATIVE_KINDS, ServeError, ServeSettings
from adapterkit.tasks import (
    GENERATION_TASKS,
    TASK_CLASSES,
    Task,
    check_task_type,
    task_from_info,
)

log = logging.getLogger("adapterkit.serve")


@dataclass
class AdapterEntry:
    """One loaded adapter as the server sees it."""

    name: str
    path: Path
    method: str
    task_type: str | None
    labels: list[str]
    size_bytes: int
    trainable_params: int
    task: Task | None
    """The task that formats predictions; None for generation (head-less) adapters."""
    generative: bool

    def describe(self) -> dict[str, Any]:
        """The JSON row of ``GET /v1/adapters``."""
        return {
            "name": self.name,
            "task": self.task_type,
            "method": self.method,
            "labels": self.labels,
            "size_bytes": self.size_bytes,
            "trainable_params": self.trainable_params,
        }


class AdapterRegistry:
    """The served model, its tokenizer, and the adapters loaded into it.

    Args:
        model: The adapted base (adapters are added and removed in place).
        tokenizer: The base's tokenizer, used on the event loop only (tasks encode with it).
        decode_tokenizer: A second copy for the worker thread: a fast tokenizer is not
            safe to use from two threads at once (Rust "Already borrowed" errors).
        settings: The server settings (adapter folder, kind).
    """

    def __init__(
        self, model: AdaptedModel, tokenizer: Any, decode_tokenizer: Any, settings: ServeSettings
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.decode_tokenizer = decode_tokenizer
        self.settings = settings
        self.root = settings.adapters.resolve()
        self.kind = settings.kind
        self.device = next(model.parameters()).device
        # Read once here: asking the tokenizer from the worker thread later could race the loop.
        self.pad_id = pad_token_id(tokenizer)
        self.entries: dict[str, AdapterEntry] = {}

    @classmethod
    def open(cls, settings: ServeSettings) -> AdapterRegistry:
        """Load the base and tokenizer, then every bundle in the folder that fits the base."""
        tokenizer = load_tokenizer(settings.model)
        base = load_base(settings.model, settings.kind, quantize=settings.quantize)
        model = AdaptedModel(base, name_or_path=settings.model).eval()
        if settings.quantize is None:  # bitsandbytes places a quantized base itself
            model.to(pick_device(settings.device))
            if settings.kind == "encoder":  # generation runs fp32, so decoders stay whole
                store_for_inference(model, settings.precision, next(model.parameters()).device)
        if settings.compile:  # before loading: each bundle is then checked as it comes
            model.compile(index_routing=True)
        registry = cls(model, tokenizer, load_tokenizer(settings.model), settings)
        registry.load_all()
        return registry

    def autocast(self) -> AbstractContextManager:
        """The context task-head forwards run in (``--precision``); generation stays fp32."""
        return inference_context(self.settings.precision, self.device)

    # Names and paths -------------------------------------------------------------------
    def bundle_path(self, name: str) -> Path:
        """The folder of bundle ``name`` inside the adapters folder, refusing anything else."""
        if not isinstance(name, str) or not ADAPTER_NAME.match(name):
            raise ServeError(
                400,
                f"invalid adapter name {name!r}: use 1-64 letters, digits, '_' or '-', "
                "starting with a letter or digit",
            )
        path = (self.root / name).resolve()
        # The regex already excludes '..' and '/'; a symlink could still point outside.
        if not path.is_relative_to(self.root):
            raise ServeError(400, f"adapter '{name}' resolves outside the adapters folder")
        return path

    # Loading (worker thread only, once serving) ---------------------------------------------
    def load_all(self) -> list[str]:
        """Load every bundle folder; ones that do not fit are logged and skipped, never fatal."""
        loaded = []
        for folder in sorted(p for p in self.root.iterdir() if is_bundle_dir(p)):
            try:
                loaded.append(self.load(folder.name).name)
            except ServeError as exc:
                log.warning("skipped bundle %s: %s", folder.name, exc.detail)
        log.info("loaded %d adapter(s): %s", len(loaded), ", ".join(loaded) or "none")
        return loaded

    def load(self, name: str) -> AdapterEntry:
        """Load bundle folder ``name`` (or a PEFT adapter folder) as adapter ``name``.

        Raises:
            ServeError: 400 bad name, 404 no such bundle, 409 already loaded or made
                for another base, 422 an unreadable bundle or one carrying base weights.
        """
        path = self.bundle_path(name)
        if name in self.entries:
            raise ServeError(409, f"adapter '{name}' is already loaded")
        if not is_bundle_dir(path):
            raise ServeError(404, f"no bundle named '{name}' in the adapters folder")
        if is_peft_folder(path):
            return self._load_peft(name, path)
        try:
            record = read_bundle_config(path)
        except BundleError as exc:
            raise ServeError(422, str(exc)) from None
        if record.get("includes_base"):
            raise ServeError(
                422,
                f"{name}: the bundle carries base weights (a --method full run); all adapters "
                "here share one base, which no bundle may overwrite",
            )
        try:
            self.model.check_bundle_base(record, path.name)
        except BundleError as exc:
            raise ServeError(409, str(exc)) from None
        try:
            self.model.load_adapter(path, name=name)  # leaves no trace when it fails
        except AdapterkitError as exc:
            raise ServeError(422, f"{name}: {exc}") from None
        except Exception as exc:  # e.g. out of memory: still this bundle's fault, not the server's
            log.exception("loading bundle %s failed", name)
            raise ServeError(422, f"{name}: could not be loaded ({type(exc).__name__})") from None
        return self._enter(name, path)

    def _load_peft(self, name: str, path: Path) -> AdapterEntry:
        """A PEFT adapter folder (LoRA, DoRA, IA3), converted as ``adapterkit import`` does."""
        try:
            self.model.load_adapter(path, name=name)  # leaves no trace when it fails
        except AdapterkitError as exc:
            raise ServeError(422, f"{name}: {exc}") from None
        return self._enter(name, path)

    def _enter(self, name: str, path: Path) -> AdapterEntry:
        self.model.eval()  # a freshly attached head must not run dropout
        try:
            entry = self._entry(name, path)
        except AdapterkitError as exc:  # e.g. a task type this version does not know
            self.model.delete_adapter(name)
            raise ServeError(422, f"{name}: {exc}") from None
        self.entries[name] = entry
        return entry

    def _entry(self, name: str, path: Path) -> AdapterEntry:
        info = self.model.task_info.get(name, {})
        task_type = info.get("type") or None
        has_head = name in self.model.heads
        task = None
        if task_type is not None:
            check_task_type(task_type)
        if has_head and task_type in TASK_CLASSES:
            task = task_from_info(info, self.tokenizer)
        # A head-less bundle generates text (bundles from before tasks were recorded say nothing).
        generative = not has_head and (task_type is None or task_type in GENERATION_TASKS)
        return AdapterEntry(
            name=name,
            path=path,
            method=self.model.configs[name].method,
            task_type=task_type or ("causal-lm" if generative else None),
            labels=list(info.get("labels") or []),
            size_bytes=sum(f.stat().st_size for f in path.iterdir() if f.is_file()),
            trainable_params=self.model.parameter_report(name).trainable,
            task=task,
            generative=generative,
        )

    def unload(self, name: str) -> None:
        """Delete adapter ``name`` from the model (404 when it is not loaded)."""
        self.get(name)
        self.model.delete_adapter(name)
        del self.entries[name]

    # Lookups (event loop) ----------------------------------------------------------------
    def get(self, name: str) -> AdapterEntry:
        """The loaded adapter ``name`` or a 404 listing what is loaded."""
        entry = self.entries.get(name)
        if entry is None:
            known = ", ".join(self.entries) or "none"
            raise ServeError(404, f"no adapter named '{name}' is loaded (loaded: {known})")
        return entry

    def for_predict(self, name: str) -> AdapterEntry:
        """An adapter with a task head, or 404/400 saying why not."""
        entry = self.get(name)
        if entry.task is None:
            what = (
                "a generation adapter (no task head)"
                if entry.generative
                else (f"for task '{entry.task_type}', which has no predictor")
            )
            raise ServeError(400, f"adapter '{name}' is {what}; it cannot answer /v1/predict")
        return entry

    def for_generate(self, name: str | None) -> AdapterEntry | None:
        """A generation adapter (None: the base alone), or 404/400 saying why not."""
        if self.kind not in GENERATIVE_KINDS:
            raise ServeError(
                400,
                "this server's base is an encoder; generation needs --kind causal-lm "
                "(or seq2seq for an encoder-decoder)",
            )
        if name is None:
            return None
        entry = self.get(name)
        if not entry.generative:
            raise ServeError(
                400,
                f"adapter '{name}' is a {entry.task_type} adapter with a task head; "
                "use /v1/predict for it",
            )
        return entry

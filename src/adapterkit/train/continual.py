"""Continuing from a trained bundle: ``train --init-from``, with what keeps it from forgetting.

A run that continues from a bundle (its *parent*) trains the parent's method with the
parent's options, starting from the parent's adapter and head. Its label set is the
parent's labels first, in their order, then labels that only the new data (or the
replayed data) has, so the parent's head rows keep their meaning and their weights
exactly; rows of new labels start as a fresh head's do; a label the new data lacks
stays in the head.

Two options hold on to what the parent learned (both measured in docs/continual.md):

- ``--replay OLD --replay-ratio r``: each epoch mixes a seeded sample of the old training
  examples into the new ones, so that old rows make up the share ``r`` of the epoch
  (rehearsal; a new sample every epoch);
- ``--anchor-weight w``: ``w · Σ (θ − θ_parent)²`` over the adapter and the parent's head
  rows joins the loss (an L2 pull to the start; EWC without its Fisher weighting).

``--old-data OLD`` scores the parent, as saved, on the old data's validation and test
splits before training, and the new bundle on the same examples after: the forgetting.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adapterkit.bundle import parent_record, read_bundle, read_bundle_config
from adapterkit.data import DataSplits, load_data
from adapterkit.data.splits import example_labels
from adapterkit.errors import AdapterkitError
from adapterkit.methods import AdapterConfig, make_config
from adapterkit.model_bundles import check_bundle_record

Log = Callable[[str], None]


@dataclass
class Lineage:
    """What a job continues from, read before anything is built."""

    path: Path
    """The parent bundle."""
    record: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    replay: list[dict[str, Any]] = field(default_factory=list)
    """Old training examples, a seeded share of which joins each epoch."""
    old: DataSplits | None = None
    """Old data whose validation and test splits measure the forgetting."""

    @property
    def parent(self) -> dict[str, Any]:
        """The ``parents`` entry the continued bundle records."""
        return parent_record(self.path, self.record, "init-from")

    @property
    def labels(self) -> list[str] | None:
        """The parent's labels (None for tasks without labels)."""
        return (self.record.get("task") or {}).get("labels")


def bundle_method(
    path: str, method: str | None, given: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """(method, options) of a run that continues from the bundle at ``path``: the bundle's.

    A continued adapter keeps its shape, so a ``--method`` or method option that says
    otherwise is refused rather than ignored.

    Raises:
        AdapterkitError: One line naming the option that disagrees with the bundle.
    """
    record = read_bundle_config(path)
    if record.get("includes_base"):
        raise AdapterkitError(
            f"--init-from {path}: a full fine-tuning bundle; continuing one is not supported, "
            "train an adapter from it with --model instead"
        )
    if method == "full":
        raise AdapterkitError(
            f"--init-from {path}: continuing into full fine-tuning is not supported; "
            "continue the adapter, or train full from the base"
        )
    if record.get("method") == "composition":
        raise AdapterkitError(
            f"--init-from {path}: a composition bundle; continuing one is not supported, train "
            "a new one from its parts (--fuse, --stack-on)"
        )
    stored = check_bundle_record(record, path)
    try:
        wanted: AdapterConfig = make_config(method or stored.method, **given)
    except AdapterkitError as exc:  # an option the bundle's method does not have
        raise AdapterkitError(f"--init-from {path}: {exc}") from None
    if type(wanted) is not type(stored):
        raise AdapterkitError(
            f"--init-from {path} continues its {stored.method} adapter, not {method}; drop --method"
        )
    theirs, mine = stored.to_dict(), wanted.to_dict()
    plain = make_config(stored.method).to_dict()
    # What the flags said: the options given, and the fields a preset (pfeiffer) sets.
    said = [key for key in mine if key in given or mine[key] != plain[key]]
    differ = [key for key in said if mine[key] != theirs.get(key)]
    if differ:
        key = differ[0]
        raise AdapterkitError(
            f"--init-from {path}: its {stored.method} adapter has {key}={theirs.get(key)!r}, "
            f"not {mine[key]!r}; a continued adapter keeps its options (drop the flag)"
        )
    return stored.method, theirs


def load_lineage(options: Any, splits: DataSplits, seed: int, log: Log) -> Lineage | None:
    """The parent bundle, replayed and old data of a job (None when it starts fresh), with
    ``splits.label_names`` widened to the parent's labels plus the new ones.

    Raises:
        AdapterkitError: A parent of another task type, or old data of another task or
            with labels the head will not have.
    """
    if not options.init_from:
        return None
    record, tensors = read_bundle(options.init_from)
    task = (record.get("task") or {}).get("type")
    if task not in (splits.task, None) and not (task == "seq2seq" and splits.task == "causal-lm"):
        raise AdapterkitError(
            f"--init-from {options.init_from}: a {task} bundle, but this data is {splits.task}"
        )
    held = ((record.get("head") or {}).get("config") or {}).get("pooling")
    if options.pooling is not None and held is not None and options.pooling != held:
        raise AdapterkitError(
            f"--init-from {options.init_from}: its head pools by {held}; drop --pooling"
        )
    lineage = Lineage(Path(options.init_from), record, tensors)
    if options.replay:
        lineage.replay = _load_old(options, "--replay", splits, seed).train
    if options.old_data:
        lineage.old = _load_old(options, "--old-data", splits, seed)
        if not lineage.old.validation and not lineage.old.test:
            raise AdapterkitError(f"--old-data {options.old_data}: no validation or test split")
    if lineage.labels is not None and splits.label_names is not None:
        seen = [*splits.label_names, *_labels_of(lineage.replay, splits.task)]
        added = _new(lineage.labels, seen)
        splits.label_names = [*lineage.labels, *added]
        if added:
            log(f"init-from: {len(added)} new label(s) join the head: {', '.join(added[:10])}")
    if lineage.old is not None and lineage.labels is not None:
        unknown = _new(lineage.labels, _labels_of(_old_examples(lineage.old), splits.task))
        if unknown:
            raise AdapterkitError(
                f"--old-data {options.old_data}: label(s) {', '.join(unknown[:5])} are not "
                f"among the parent's labels, so its score before this run is undefined"
            )
    log(
        f"init-from: {options.init_from} ({record.get('method')}, "
        f"{len(lineage.labels or [])} labels)"
        + (f"; replaying {len(lineage.replay)} old examples" if lineage.replay else "")
    )
    return lineage


def _load_old(options: Any, flag: str, splits: DataSplits, seed: int) -> DataSplits:
    """Old data read as the new data is (same task and columns), refused in one line
    otherwise."""
    source = options.replay if flag == "--replay" else options.old_data
    try:
        old = load_data(
            source,
            task=splits.task,
            text_column=options.text_column,
            text_pair_column=options.text_pair_column,
            label_column=options.label_column,
            seed=seed,
        )
    except AdapterkitError as exc:
        raise AdapterkitError(f"{flag} {source}: {exc}") from None
    if old.task != splits.task:
        raise AdapterkitError(f"{flag} {source}: {old.task} data, but this run is {splits.task}")
    return old


def _old_examples(old: DataSplits) -> list[dict]:
    return [*(old.validation or []), *(old.test or [])]


def _labels_of(examples: list[dict], task: str) -> list[str]:
    seen: dict[str, None] = {}
    for example in examples:
        seen.update(dict.fromkeys(example_labels(example, task)))
    return list(seen)


def _new(known: list[str], labels: list[str]) -> list[str]:
    have = set(known)
    return [label for label in dict.fromkeys(labels) if label not in have]


def head_config(lineage: Lineage, labels: list[str] | None) -> dict[str, Any] | None:
    """The parent's head arguments, widened to ``labels``."""
    head = lineage.record.get("head")
    if head is None:
        return None
    config = dict(head["config"])
    if labels is not None and "num_labels" in config:
        config["num_labels"] = len(labels)
    return config


def start_weights(
    lineage: Lineage, params: dict[str, torch.nn.Parameter]
) -> dict[str, torch.Tensor]:
    """The tensors that start a continued adapter: the parent's, and where a head grew
    (more labels), its old rows in front of the fresh rows already in ``params``."""
    start = {}
    for key, param in params.items():
        theirs = lineage.tensors.get(key)
        if theirs is None or theirs.shape == param.shape:
            start[key] = theirs if theirs is not None else param.detach()
            continue
        if theirs.shape[1:] != param.shape[1:] or theirs.shape[0] > param.shape[0]:
            raise AdapterkitError(
                f"--init-from {lineage.path}: tensor {key} has shape {tuple(theirs.shape)}, "
                f"which does not fit {tuple(param.shape)}"
            )
        grown = param.detach().clone()
        grown[: theirs.shape[0]] = theirs.to(grown.dtype)
        start[key] = grown
    for key in lineage.tensors:  # an extra tensor is caught by load_weights with the rest
        start.setdefault(key, lineage.tensors[key])
    return start


@dataclass
class Anchor:
    """An L2 pull of a job's parameters to where they started (``--anchor-weight``)."""

    weight: float
    pairs: list[tuple[torch.nn.Parameter, torch.Tensor]]
    """(parameter, its parent's value): the value may cover only the parameter's first
    rows (a head that gained labels; new rows have no starting point)."""

    @classmethod
    def of(cls, weight: float, lineage: Lineage, params: dict[str, torch.nn.Parameter]) -> Anchor:
        """Pull ``params`` towards the parent's values of them."""
        pairs = [
            (param, lineage.tensors[key].detach().to(param.device, param.dtype).clone())
            for key, param in params.items()
            if key in lineage.tensors
        ]
        return cls(weight, pairs)

    def penalty(self) -> torch.Tensor:
        """``weight · Σ (θ − θ_start)²`` as a scalar tensor."""
        total = sum(
            ((param[: start.shape[0]].float() - start.float()) ** 2).sum()
            for param, start in self.pairs
        )
        return self.weight * total  # type: ignore[return-value]


def replay_count(fresh: int, available: int, ratio: float) -> int:
    """Old examples per epoch so that they make up ``ratio`` of it (all there are, at most)."""
    return min(available, math.ceil(fresh * ratio / (1.0 - ratio)))


def replay_sample(available: int, count: int, seed: int, epoch: int) -> list[int]:
    """Which old examples join ``epoch``: a seeded sample, another each epoch."""
    generator = torch.Generator().manual_seed(seed * 7_919 + epoch + 104_729)
    return sorted(torch.randperm(available, generator=generator)[:count].tolist())

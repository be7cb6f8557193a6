"""The one entry point from "what the user named" to :class:`DataSplits`."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from adapterkit.data.builtin import BUILTIN_DATASETS, list_builtin
from adapterkit.data.hub import SPLIT_NAMES, hub_records
from adapterkit.data.readers import EXTENSIONS, FileData, from_records, read_file
from adapterkit.data.records import Columns
from adapterkit.data.splits import (
    DataSplits,
    SplitOrigin,
    carve_validation,
    check_task,
    example_labels,
    keep_labels_in_train,
    label_names,
    split_seeded,
    validate_labels,
)
from adapterkit.errors import DataError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
SPLITS = ("train", "validation", "test")


def _split_files(folder: Path) -> dict[str, Path]:
    """Find ``train``/``validation`` (or ``valid``, ``dev``, ``val``)/``test`` files."""
    found: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        split = SPLIT_NAMES.get(path.stem.lower())
        if path.is_file() and split and path.suffix.lower() in EXTENSIONS:
            found.setdefault(split, []).append(path)
    for split, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise DataError(f"{folder}: more than one {split} file ({names}); keep one")
    if "train" not in found:
        have = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
        raise DataError(
            f"{folder}: no train file (train.csv, train.jsonl, train.conll, ...); found: {have}"
        )
    return {split: paths[0] for split, paths in found.items()}


def _subsample(train: list[dict], task: str, k: int, seed: int) -> tuple[list[dict], str]:
    """Seeded subsample of ``k`` examples that still shows every training label once."""
    if k < 1:
        raise DataError(f"max_train_samples must be at least 1, got {k}")
    keep = set(random.Random(seed).sample(range(len(train)), k))
    seen = {lab for i in keep for lab in example_labels(train[i], task)}
    added = 0
    for i, ex in enumerate(train):
        # A label dropped by the sample would make every evaluation example with
        # it an error, so one example of each such label is put back.
        missing = set(example_labels(ex, task)) - seen
        if i not in keep and missing:
            keep.add(i)
            seen |= missing
            added += 1
    note = f"max_train_samples: kept a seeded sample (seed {seed}) of {k} of {len(train)} examples"
    if added:
        note += f", plus {added} so that every training label occurs"
    return [train[i] for i in sorted(keep)], note


def _not_found(data: str) -> str:
    return f"{data!r} is not a built-in data set, a file or a directory; built-ins: " + ", ".join(
        list_builtin()
    )


@dataclass
class _Loaded:
    """Splits as read, before carving and sampling."""

    examples: dict[str, list[dict] | None]
    task: str
    source: str
    notes: list[str] = field(default_factory=list)
    origins: dict[str, SplitOrigin] = field(default_factory=dict)


def _from_builtin(name: str, task: str | None) -> _Loaded:
    splits = BUILTIN_DATASETS[name]()
    if task is not None and task != splits.task:
        raise DataError(f"built-in {name!r} is a {splits.task} data set, not {task}")
    examples = {"train": splits.train, "validation": splits.validation, "test": splits.test}
    return _Loaded(examples, splits.task, splits.source, list(splits.notes))


def _collect(sources: dict[str, FileData], source: str) -> _Loaded:
    return _Loaded(
        examples={split: data.examples for split, data in sources.items()},
        task=sources["train"].task,
        source=source,
        notes=[note for data in sources.values() for note in data.notes],
        origins={split: SplitOrigin(data.path, data.lines) for split, data in sources.items()},
    )


def _from_files(files: dict[str, str | Path], task: str | None, columns: Columns) -> _Loaded:
    kw = {
        "text_column": columns.text,
        "text_pair_column": columns.text_pair,
        "label_column": columns.label,
    }
    sources = {"train": read_file(files["train"], task=task, **kw)}
    for split in ("validation", "test"):
        if split in files:
            # Evaluation files are read for the task found in train, so a test
            # file cannot be silently detected as something else.
            sources[split] = read_file(files[split], task=sources["train"].task, **kw)
    return _collect(sources, ", ".join(f"{k}={v}" for k, v in files.items()))


def _from_one_file(path: Path, task: str | None, columns: Columns, seed: int) -> _Loaded:
    loaded = _from_files({"train": path}, task, columns)
    parts = split_seeded(loaded.examples["train"] or [], [0.8, 0.1, 0.1], seed)
    train, evals, moved = keep_labels_in_train(
        parts[0], {"validation": parts[1], "test": parts[2]}, loaded.task
    )
    # A tiny file leaves nothing for an evaluation split: None, not an empty list,
    # so validation is carved later if possible and test is simply absent.
    loaded.examples = {"train": train, **{k: v or None for k, v in evals.items()}}
    # Shuffled: line numbers no longer line up, but the file name still helps.
    loaded.origins = {split: SplitOrigin(str(path)) for split in SPLITS}
    counts = " / ".join(f"{len(loaded.examples[s] or [])} {s}" for s in SPLITS)
    loaded.notes.append(f"one file: split 80/10/10 (seed {seed}): {counts}")
    if moved:
        loaded.notes.append(
            f"moved {moved} evaluation examples whose labels train lacks into train"
        )
    return loaded


def _from_hub(name: str, task: str | None, columns: Columns) -> _Loaded:
    records, notes = hub_records(name, _not_found(name))
    sources: dict[str, FileData] = {}
    for split in SPLITS:
        if split in records:
            rows = records[split]
            sources[split] = from_records(
                rows,
                [0] * len(rows),
                f"{name}[{split}]",
                task=sources["train"].task if sources else task,
                columns=columns,
            )
    loaded = _collect(sources, f"hub {name}")
    loaded.notes[:0] = notes
    loaded.origins = {split: SplitOrigin(f"{name}[{split}]") for split in sources}
    return loaded


def _resolve(data: str, task: str | None, columns: Columns, seed: int) -> _Loaded:
    if data in BUILTIN_DATASETS:
        return _from_builtin(data, task)
    path = Path(data).expanduser()
    if path.is_dir():
        return _from_files(dict(_split_files(path)), task, columns)
    if path.is_file():
        return _from_one_file(path, task, columns, seed)
    if path.suffix.lower() in EXTENSIONS or data.startswith((".", "/", "~")) or "\\" in data:
        raise DataError(f"{data}: no such file or directory")
    if not _HUB_ID.match(data):
        raise DataError(_not_found(data))
    return _from_hub(data, task, columns)


def load_data(
    data: str | None = None,
    *,
    train: str | None = None,
    validation: str | None = None,
    test: str | None = None,
    task: str | None = None,
    text_column: str = "text",
    text_pair_column: str | None = None,
    label_column: str = "label",
    seed: int = 0,
    validation_fraction: float = 0.1,
    max_train_samples: int | None = None,
) -> DataSplits:
    """Load a data set into train/validation/test examples.

    ``data`` is one of: a built-in name (see :func:`list_builtin`); a folder with
    ``train``, ``validation`` (or ``valid``/``dev``/``val``) and ``test`` files
    of any supported type; one file, split 80/10/10 with ``seed``; or a hub id,
    loaded with the optional ``datasets`` library. Instead of ``data``, files can
    be named one by one with ``train``/``validation``/``test``.

    Built-in data sets come with fixed splits (seed 0) so that results compare
    across runs; ``seed`` and ``validation_fraction`` do not change them.

    Without a validation split one is carved from train (``validation_fraction``,
    ``seed``); when adapterkit splits data itself, evaluation examples whose label
    train lacks are moved back into train. Every decision is logged in ``notes``.

    Args:
        data: Built-in name, folder, file or hub id.
        train: Training file (instead of ``data``).
        validation: Validation file.
        test: Test file.
        task: Task name, or None to detect it from the training data.
        text_column: Field with the text (classification).
        text_pair_column: Field with the second text of a pair, if any.
        label_column: Field with the label (classification).
        seed: Seed of every split and sample made here.
        validation_fraction: Share of train carved as validation when none is given.
        max_train_samples: Keep a seeded sample of this many training examples.

    Returns:
        The splits, task, label names, notes and source.

    Raises:
        DataError: One line saying what is wrong and where.
    """
    if task is not None:
        check_task(task)
    columns = Columns(text_column, text_pair_column, label_column)
    named = {k: v for k, v in {"train": train, "validation": validation, "test": test}.items() if v}
    if data is not None and named:
        raise DataError(
            "name the data either as one data set, folder or file, "
            "or as train=/validation=/test= files, not both"
        )
    if data is None:
        if "train" not in named:
            raise DataError("no training data given" if named else "no data given")
        loaded = _from_files(named, task, columns)
    else:
        loaded = _resolve(data, task, columns, seed)

    task, notes, examples = loaded.task, loaded.notes, loaded.examples
    train_ex: list[dict] = examples["train"] or []
    if examples.get("validation") is None:
        train_ex, carved, note = carve_validation(train_ex, validation_fraction, seed)
        train_ex, evals, moved = keep_labels_in_train(train_ex, {"validation": carved}, task)
        if carved and not evals["validation"]:
            labels = {lab for ex in train_ex for lab in example_labels(ex, task)}
            raise DataError(
                f"no validation split could be carved: each of the {len(carved)} examples held "
                f"out has a label no other example has ({len(labels)} labels over "
                f"{len(train_ex)} examples); is the label column the right one? Or give a "
                "--validation file"
            )
        examples["validation"] = evals["validation"]
        notes.append(
            note + (f"; {moved} moved back to train for their rare labels" if moved else "")
        )
    if examples.get("test") is None:
        notes.append("no test split")
    if max_train_samples is not None and max_train_samples < len(train_ex):
        train_ex, note = _subsample(train_ex, task, max_train_samples, seed)
        notes.append(note)
    splits = DataSplits(
        train=train_ex,
        validation=examples.get("validation"),
        test=examples.get("test"),
        task=task,
        label_names=label_names(train_ex, task),
        notes=notes,
        source=loaded.source,
    )
    validate_labels(splits, loaded.origins)
    return splits

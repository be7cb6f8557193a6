"""Data: user files, built-in real data sets, hub data sets, splits.

Everything ends as :class:`DataSplits` from :func:`load_data`. Example dicts
per task (the contract the task modules code against):

- ``sequence-classification``: ``{"text": str, "text_pair": str | None, "label": str}``
- ``multi-label-classification``: ``{"text": str, "text_pair": str | None, "labels": list[str]}``
- ``token-classification``: ``{"tokens": list[str], "tags": list[str]}`` (IOB2 when IOB)
- ``question-answering``: ``{"question": str, "context": str,
  "answers": {"text": list[str], "answer_start": list[int]}}``
- ``relation-extraction``: ``{"text": str, "head": [start, end], "tail": [start, end],
  "relation": str}`` (character offsets, end exclusive; see ``data/relations.py``)
- ``causal-lm``: ``{"prompt": str, "response": str}`` or ``{"messages": [{"role", "content"}]}``;
  summarization and translation keep the raw ``source`` and ``reference`` too.

Labels are always strings. Any problem with the data raises
:class:`adapterkit.errors.DataError` with one line naming the file and line.
"""

from adapterkit.data.builtin import BUILTIN_DATASETS, list_builtin
from adapterkit.data.cache import cache_dir
from adapterkit.data.conll import parse_conll, to_iob2
from adapterkit.data.loading import load_data
from adapterkit.data.pinned import PINNED, fetch_wheel, prefetch
from adapterkit.data.readers import FileData, read_file
from adapterkit.data.splits import (
    CAUSAL_LM,
    MULTI_LABEL_CLASSIFICATION,
    QUESTION_ANSWERING,
    RELATION_EXTRACTION,
    SEQUENCE_CLASSIFICATION,
    TASKS,
    TOKEN_CLASSIFICATION,
    DataSplits,
    carve_validation,
    check_trainable,
    label_names,
    sample_examples,
    split_seeded,
    validate_labels,
)
from adapterkit.data.wheel_files import extract_tree, read_member

__all__ = [
    "BUILTIN_DATASETS",
    "CAUSAL_LM",
    "MULTI_LABEL_CLASSIFICATION",
    "PINNED",
    "QUESTION_ANSWERING",
    "RELATION_EXTRACTION",
    "SEQUENCE_CLASSIFICATION",
    "TASKS",
    "TOKEN_CLASSIFICATION",
    "DataSplits",
    "FileData",
    "cache_dir",
    "carve_validation",
    "check_trainable",
    "extract_tree",
    "fetch_wheel",
    "label_names",
    "list_builtin",
    "load_data",
    "parse_conll",
    "prefetch",
    "read_file",
    "read_member",
    "sample_examples",
    "split_seeded",
    "to_iob2",
    "validate_labels",
]

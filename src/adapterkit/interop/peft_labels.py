"""The head's label names beside a PEFT folder: ``labels.json``, written by the export and
read back by the import.

PEFT's ``adapter_config.json`` has no field for them, so a tagger exported without this
file comes back as ``LABEL_0 ...``. The file holds ``id2label`` and ``label2id`` as a
transformers ``config.json`` does; a PEFT user builds the base with them (integer ids:
transformers keeps string keys given as arguments as they are)::

    names = json.load(open("labels.json"))["id2label"]
    id2label = {int(i): name for i, name in names.items()}
    label2id = {name: i for i, name in id2label.items()}
    base = AutoModelForTokenClassification.from_pretrained(
        base_name, id2label=id2label, label2id=label2id
    )
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from adapterkit.errors import AdapterkitError

LABELS_FILE = "labels.json"
MAX_LABELS_BYTES = 16 * 1024 * 1024
"""A label file larger than this is refused unread (a head has thousands of labels at most)."""


def labels_document(labels: list[str]) -> str:
    """``labels.json``'s text: ``id2label`` and ``label2id`` as transformers' configs keep them."""
    id2label = {str(i): label for i, label in enumerate(labels)}
    label2id = {label: i for i, label in enumerate(labels)}
    return json.dumps({"id2label": id2label, "label2id": label2id}, indent=2) + "\n"


def read_folder_labels(folder: str | Path) -> list[str] | None:
    """The label names in ``folder/labels.json``, in output order; None when there is no file.

    Raises:
        AdapterkitError: A file that is not JSON, or whose ``id2label`` is not the ids
            0..n-1 each naming a distinct, non-empty label (one line).
    """
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_LABELS_BYTES:
        raise AdapterkitError(f"{path}: over {MAX_LABELS_BYTES} bytes; not a label file")
    try:
        document = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterkitError(f"{path}: not JSON ({exc})") from None
    id2label = document.get("id2label") if isinstance(document, dict) else None
    if not isinstance(id2label, dict) or not id2label:
        raise AdapterkitError(f"{path}: no id2label object (output id -> label name)")
    ids = [str(i) for i in range(len(id2label))]
    if sorted(id2label) != sorted(ids):
        raise AdapterkitError(
            f"{path}: id2label's keys must be the ids 0..{len(ids) - 1}, "
            f"got {', '.join(sorted(id2label)[:5])}"
        )
    labels = [id2label[i] for i in ids]
    if not all(isinstance(label, str) and label.strip() for label in labels):
        raise AdapterkitError(f"{path}: every id2label value must be a non-empty string")
    if len(set(labels)) != len(labels):
        twice = sorted(label for label, n in Counter(labels).items() if n > 1)
        raise AdapterkitError(f"{path}: id2label names {', '.join(twice[:5])} more than once")
    return labels

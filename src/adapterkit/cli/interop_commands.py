"""``adapterkit export`` and ``adapterkit import``: bundles to and from other tools' formats."""

from __future__ import annotations

import json
from typing import Any

from adapterkit.errors import AdapterkitError

FORMATS = ("peft", "merged")


def cmd_export(values: dict[str, Any]) -> int:
    """Write a bundle in another format: ``peft`` (a PEFT adapter folder) or ``merged`` (a
    plain transformers model folder with the adapter folded in)."""
    from adapterkit.files import check_not_over_inputs, check_writable_dir
    from adapterkit.interop.merged_export import export_merged
    from adapterkit.interop.peft_export import export_peft

    if values["format"] not in FORMATS:
        raise AdapterkitError(
            f"unknown export format '{values['format']}'; use {', '.join(FORMATS)}"
        )
    check_writable_dir(values["out"], "--out")
    check_not_over_inputs(values["out"], "--out", {"the bundle": values["bundle"]})
    write = export_peft if values["format"] == "peft" else export_merged
    out = write(values["bundle"], values["out"])
    print(json.dumps({"exported": str(out), "format": values["format"]}))
    return 0


def cmd_import(values: dict[str, Any]) -> int:
    """Write a PEFT adapter folder as an adapterkit bundle."""
    from adapterkit.files import check_not_over_inputs, check_writable_dir
    from adapterkit.interop.peft_import import import_peft

    check_writable_dir(values["out"], "--out")
    check_not_over_inputs(values["out"], "--out", {"the PEFT folder": values["folder"]})
    out = import_peft(
        values["folder"], values["out"], values["model"], values["labels"], values["name"]
    )
    print(json.dumps({"bundle": str(out)}))
    return 0

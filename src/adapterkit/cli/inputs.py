"""Reading the inputs of ``adapterkit predict`` and ``generate``: arguments, a file or stdin."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from adapterkit.errors import AdapterkitError


def read_inputs(values: dict[str, Any]) -> list[Any]:
    """The inputs to predict on or prompts to generate from.

    From ``--file`` when given, else the positional arguments, else stdin (also for a
    lone ``-``). A file or stdin holds one input per line: plain text, or a JSON object
    when the line starts with ``{``; blank lines are skipped.

    Raises:
        AdapterkitError: One line for a missing file, text that is not UTF-8, a bad
            JSON line (with its number) or no inputs at all.
    """
    if values.get("file"):
        path = Path(values["file"])
        if not path.is_file():
            raise AdapterkitError(f"{path}: no such file")
        raw = path.read_bytes()
        name = str(path)
    elif values["inputs"] and values["inputs"] != ["-"]:
        return list(values["inputs"])
    else:
        raw, name = sys.stdin.buffer.read(), "<stdin>"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AdapterkitError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    inputs: list[Any] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                inputs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AdapterkitError(f"{name}:{number}: not valid JSON ({exc.msg})") from None
        else:
            inputs.append(line)
    if not inputs:
        raise AdapterkitError(f"{name}: no inputs")
    return inputs

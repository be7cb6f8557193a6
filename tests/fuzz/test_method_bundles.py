"""Hostile bundles of every second-wave method: each field of the method's config set to a
wrong type, a negative, a zero or a huge value, and each kind of tensor the method saves
dropped, cut, widened or made infinite. ``predict`` then either answers (the change was
harmless: an unused field, a bigger alpha) or refuses in one line with exit code 2; never
a traceback or a hang.

tests/fuzz/bundle_mutations.py spoils the Pfeiffer bundle field by field with named
expectations; this file sweeps the other methods' own fields and tensors.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from tests.fuzz.conftest import Env
from tests.fuzz.test_cli_fuzz import CASE_SECONDS, deadline, run_cli
from tests.tiny import FINISHED

from adapterkit.bundle import CONFIG_FILE, WEIGHTS_FILE
from adapterkit.cli import main
from adapterkit.files import sha256_file
from adapterkit.methods import make_config

METHODS = ("adalora", "dora", "ia3", "prompt", "prefix", "mam", "unipelt")
BAD_VALUES = ("x", -1, 0, 10**9)
TENSOR_CHANGES: dict[str, Callable[[torch.Tensor], torch.Tensor | None]] = {
    "drop": lambda t: None,
    "cut": lambda t: t[..., :-1].contiguous() if t.dim() else t.reshape(1)[:0],
    "widen": lambda t: torch.cat([t, t[..., :1]], dim=-1) if t.dim() else t.reshape(1),
    "inf": lambda t: torch.full_like(t, float("inf")),
}


@pytest.fixture(scope="module")
def method_bundles(env: Env, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One trained bundle per method on the tiny BERT (one epoch, a first-token head)."""
    root = tmp_path_factory.mktemp("method-bundles")
    found = {}
    for method in METHODS:
        argv = ["train", "--model", str(env.model), "--train", str(env.train), "--method", method]
        argv += ["--epochs", "1", "--report-to", "none", "--output", str(root / method)]
        argv += ["--pooling", "cls"]  # a head PEFT can hold: the export reaches the adapter
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(argv) in FINISHED, method
        found[method] = root / method / "adapter"
    return found


def _fields(method: str) -> list[str]:
    return sorted(make_config(method).to_dict())


def _tensor_kinds(bundle: Path) -> list[str]:
    """The last name part of each adapter tensor the bundle holds (lora_E, embedding, ...)."""
    return sorted(
        {k.rsplit(".", 1)[-1] for k in load_file(bundle / WEIGHTS_FILE) if "adapter." in k}
    )


def _spoiled(bundle: Path, tmp: Path, change: Callable[[dict[str, Any], Path], None]) -> Path:
    folder = shutil.copytree(bundle, tmp / "bundle")
    record = json.loads((folder / CONFIG_FILE).read_text())
    change(record, folder)
    (folder / CONFIG_FILE).write_text(json.dumps(record))
    return folder


def _set_field(name: str, value: Any) -> Callable[[dict[str, Any], Path], None]:
    def change(record: dict[str, Any], folder: Path) -> None:
        record["config"][name] = value

    return change


def _change_tensors(kind: str, how: str) -> Callable[[dict[str, Any], Path], None]:
    def change(record: dict[str, Any], folder: Path) -> None:
        weights = folder / WEIGHTS_FILE
        tensors = {}
        for key, tensor in load_file(weights).items():
            changed = TENSOR_CHANGES[how](tensor) if key.endswith("." + kind) else tensor
            if changed is not None:
                tensors[key] = changed
        save_file(tensors, weights)
        entry = record["files"][WEIGHTS_FILE]  # only the content is off, not the checksum
        entry["bytes"], entry["sha256"] = weights.stat().st_size, sha256_file(weights)

    return change


def _predict(folder: Path, answers: tuple[int, ...]) -> None:
    """``predict`` on ``folder`` exits with one of ``answers``; a refusal is one line."""
    with deadline(CASE_SECONDS):
        code, err = run_cli(["predict", str(folder), "good movie"])
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert code in answers, f"{folder.parent.name}: exit {code}: {err[-2000:]}"
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("adapterkit"), err


@pytest.mark.parametrize("method", METHODS)
def test_every_config_field_spoiled_is_answered_or_refused_in_one_line(
    method: str, method_bundles: dict[str, Path], tmp_path: Path
) -> None:
    for name in _fields(method):
        for value in BAD_VALUES:
            case = tmp_path / f"{name}-{value}"
            case.mkdir()
            _predict(_spoiled(method_bundles[method], case, _set_field(name, value)), (0, 2))


@pytest.mark.parametrize("method", METHODS)
def test_every_tensor_kind_spoiled_is_answered_or_refused_in_one_line(
    method: str, method_bundles: dict[str, Path], tmp_path: Path
) -> None:
    kinds = _tensor_kinds(method_bundles[method])
    assert kinds, method
    for kind in kinds:
        for how in TENSOR_CHANGES:
            case = tmp_path / f"{kind}-{how}"
            case.mkdir()
            # Each change leaves weights that do not fit the config, or are not finite.
            _predict(_spoiled(method_bundles[method], case, _change_tensors(kind, how)), (2,))


def test_a_spoiled_adalora_bundle_is_refused_by_merge_and_export(
    method_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """Merge and the PEFT export read AdaLoRA's tensors as LoRA factors themselves: a layer
    whose tensors are missing or disagree on its rank is one line, not a traceback. (The
    export does not compare the factors' widths with the base's layers: a PEFT folder of
    a lora_A cut along its input loads nowhere; noted, not checked here.)"""
    good = method_bundles["adalora"]
    cases = [(kind, "drop") for kind in ("lora_A", "lora_B", "lora_E", "rank_mask")]
    cases += [(kind, how) for kind in ("lora_E", "rank_mask") for how in ("cut", "widen")]
    for kind, how in cases:
        case = tmp_path / f"{kind}-{how}"
        case.mkdir()
        folder = _spoiled(good, case, _change_tensors(kind, how))
        for argv in (
            ["merge", str(folder), str(good), "--out", str(case / "merged")],
            ["export", str(folder), "--format", "peft", "--out", str(case / "peft")],
        ):
            code, err = run_cli(argv)
            lines = [line for line in err.splitlines() if line.strip()]
            assert code == 2 and len(lines) == 1 and "AdaLoRA layer" in err, (argv, err)
        assert not (case / "merged").exists() and not (case / "peft").exists()

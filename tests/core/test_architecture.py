"""The package's shape: layers import only downward, and every module imports on its own.

docs/architecture.md draws the layers; the table below is the one the rule is checked
against. A new top-level module or package must be given a layer here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundations",
        (
            *("errors", "version", "checked", "files", "padding", "fingerprint", "bundle"),
            "precision",
            *("data", "metrics"),
        ),
    ),
    ("methods", ("methods",)),
    ("hosts", ("host", "host_indexed", "routing", "inject", "checkpointing", "prompting")),
    ("models", ("models", "models_gguf", "heads")),
    ("model", ("model", "model_bundles", "interop", "lifecycle")),
    ("tasks", ("tasks",)),
    ("loops", ("train", "generation", "predict", "search")),
    ("interfaces", ("serve", "cli", "__main__")),
)
"""Bottom first. The package's ``__init__`` (the public API) sits above all of them."""


def layer_of(module: str) -> int | None:
    """Layer index of a dotted ``adapterkit...`` name; the bare package is above them all."""
    parts = module.split(".")
    if len(parts) == 1:
        return len(LAYERS)
    return next((i for i, (_, members) in enumerate(LAYERS) if parts[1] in members), None)


def package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found = {}
    for path in sorted((SRC / "adapterkit").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The adapterkit modules ``path`` imports anywhere in it (deferred imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "adapterkit"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "adapterkit":
                continue
            for alias in node.names:  # `from adapterkit import bundle` imports a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in package_modules() if layer_of(m) is None]
    assert not unplaced, f"give these a layer in LAYERS and docs/architecture.md: {unplaced}"


def test_layers_import_only_downward() -> None:
    modules = package_modules()
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target}"
        for module, path in modules.items()
        if module != "adapterkit"
        for target in sorted(imports_of(path, modules))
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_the_rule_catches_an_upward_import(tmp_path) -> None:
    """The checker itself: a generation module importing the server is found."""
    fake = tmp_path / "decode.py"
    fake.write_text("def f():\n    from adapterkit.serve.jobs import GenerateJob\n")
    modules = package_modules()
    targets = imports_of(fake, modules)
    assert targets == {"adapterkit.serve.jobs"}
    assert layer_of("adapterkit.serve.jobs") > layer_of("adapterkit.generation.decode")


# One interpreter imports every module once (so the third-party libraries are loaded),
# forgets adapterkit, then forks a child per module: each child imports one adapterkit
# module into an interpreter where no adapterkit module has run yet, which is what
# catches an import cycle that only bites in one order.
IMPORT_WALK = textwrap.dedent(
    """
    import os, sys, traceback
    for name in sys.argv[1:]:
        try:
            __import__(name)
        except BaseException:
            pass  # reported by the child below
    for loaded in [m for m in sys.modules if m.split(".")[0] == "adapterkit"]:
        del sys.modules[loaded]
    failed = []
    for name in sys.argv[1:]:
        pid = os.fork()
        if pid == 0:
            try:
                __import__(name)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            failed.append(name)
    print("FAILED:", " ".join(failed))
    sys.exit(1 if failed else 0)
    """
)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_every_module_imports_on_its_own() -> None:
    names = list(package_modules())
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_WALK, *names],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def test_the_command_line_starts_without_scoring_libraries_or_peft() -> None:
    # scikit-learn (and seqeval, which imports it) cost about a second on import, peft
    # (through transformers.trainer_utils) and bitsandbytes three: the commands that never
    # score (serve, predict, a refused option) must not pay them, and training never peft.
    probe = (
        "import sys, adapterkit.cli, adapterkit.cli.jobs, adapterkit.predict, adapterkit.train; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sklearn', 'seqeval', 'peft', 'bitsandbytes'}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"

"""pyproject.toml declares exactly the third-party packages the code imports."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Imports whose package is not the one their top-level name suggests.
EXTRA_PROVIDERS = {"torch.utils.tensorboard": "tensorboard"}


def declared(extras: bool = False) -> set[str]:
    """Distribution names in [project].dependencies (and the optional extras but dev), normalised."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    if extras:
        optional = project.get("optional-dependencies", {})
        deps += [dep for name, group in optional.items() if name != "dev" for dep in group]
    return {normalise(re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0]) for dep in deps}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported() -> dict[str, set[str]]:
    """Third-party distributions the package imports, each with one file that does."""
    providers = packages_distributions()
    found: dict[str, set[str]] = {}
    for path in (ROOT / "src" / "adapterkit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("adapterkit", "__future__"):
                    continue
                dists = {EXTRA_PROVIDERS[name]} if name in EXTRA_PROVIDERS else set()
                dists |= set(providers.get(top, [top]))
                for dist in dists:
                    found.setdefault(normalise(dist), set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_declared() -> None:
    """Core dependencies, or an optional extra (imported only where that feature runs)."""
    missing = {
        dist: sorted(files)[0]
        for dist, files in imported().items()
        if dist not in declared(extras=True)
    }
    assert not missing, f"imported but not in pyproject dependencies: {missing}"


def test_every_declared_package_is_imported() -> None:
    unused = declared() - set(imported())
    assert not unused, f"declared in pyproject but imported nowhere: {sorted(unused)}"

"""The house's structure: the import-linter contracts of pyproject.toml hold, every package sits
in a layer, and no function-level import of the project's own modules is left to hide a cycle.

Layers (DESIGN.md): explorer > core.cli > core.benchmarks > core.jobs > core.evaluation >
core.training > core.models > core.nets | core.physics > core.runs > core.datasets >
core.losses | core.metrics | core._runtime, plus each package's own layers.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

#: Modules allowed to import project modules inside functions, and why. Such imports are still
#: read by import-linter (grimp counts them), so they cannot hide an upward import or a cycle.
LAZY_ALLOWED = {
    # `hydrolens --help` answers in 0.1 s instead of 2 s: each command imports what it runs
    "core/cli.py": "commands import their engine modules when run",
}


def _contracts() -> list[dict]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _lint_imports():
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.exists(), f"{exe} missing: install the test extra (pip install -e '.[test]')"
    return subprocess.run([str(exe), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_import_linter_contracts_are_kept():
    """`lint-imports` over core and explorer: every contract kept, none broken."""
    res = _lint_imports()
    out = res.stdout + res.stderr
    n = len(_contracts())
    assert res.returncode == 0, out
    assert f"Contracts: {n} kept, 0 broken." in out, out


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    """The contracts bite: a copy of the tree where core.metrics imports core.training (an
    upward import) fails `lint-imports` and names the layers contract."""
    import shutil

    for d in ("core", "explorer"):
        shutil.copytree(REPO / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    m = tmp_path / "core" / "metrics.py"
    m.write_text(m.read_text() + "\nfrom core.training import config as _upward  # noqa\n")
    exe = Path(sys.executable).with_name("lint-imports")
    res = subprocess.run([str(exe), "--config", str(tmp_path / "pyproject.toml"), "--no-cache"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "HydroLens layers, from the explorer down to the metrics BROKEN" in out, out
    assert "core.metrics -> core.training" in out, out


def _packages(root: str) -> set[str]:
    """The first-level modules and packages of ``root`` (core.X, explorer.X)."""
    base = REPO / root
    out = {f"{root}.{p.stem}" for p in base.glob("*.py") if p.stem != "__init__"}
    out |= {f"{root}.{p.name}" for p in base.iterdir() if (p / "__init__.py").exists()}
    return out


def _layer_modules(contract: dict) -> set[str]:
    return {m.strip() for layer in contract["layers"] for m in layer.split("|")}


def test_every_package_sits_in_a_layer():
    """A new module of core (or explorer) must be placed in a layer, or the contracts would not
    look at it."""
    layers = [c for c in _contracts() if c["type"] == "layers"]
    covered = set().union(*(_layer_modules(c) for c in layers))
    core_layer = next(c for c in layers if c["layers"][0] == "explorer")
    missing = sorted(m for m in _packages("core") if m not in _layer_modules(core_layer))
    assert not missing, f"not in the core layers contract: {missing}"
    missing = sorted(m for m in _packages("explorer") if m not in covered)
    assert not missing, f"not in the explorer layers contract: {missing}"


def _function_level_project_imports(path: Path) -> list[str]:
    """``line: module`` of every import of core/explorer that sits inside a function or class."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node, nested: bool):
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            if nested and isinstance(child, ast.ImportFrom):
                mod = child.module or ""
                if child.level > 0 or mod.split(".")[0] in ("core", "explorer"):
                    found.append(f"{child.lineno}: {'.' * child.level}{mod}")
            elif nested and isinstance(child, ast.Import):
                found.extend(f"{child.lineno}: {a.name}" for a in child.names
                             if a.name.split(".")[0] in ("core", "explorer"))
            visit(child, inner)

    visit(tree, False)
    return found


def test_no_function_level_import_of_project_modules():
    """Imports of the project's own modules stand at the top of each module (a lazy import
    is how a cycle hides); core/cli.py alone imports inside its commands, for start-up time."""
    offenders = {}
    for path in sorted([*(REPO / "core").rglob("*.py"), *(REPO / "explorer").rglob("*.py")]):
        rel = path.relative_to(REPO).as_posix()
        if rel in LAZY_ALLOWED:
            continue
        found = _function_level_project_imports(path)
        if found:
            offenders[rel] = found
    assert not offenders, f"function-level imports of project modules: {offenders}"


@pytest.mark.parametrize("module", ["core.metrics", "core.losses", "core.runs", "core.datasets"])
def test_low_layers_import_without_the_engine_above(module):
    """The metrics, losses, run store and readers load without training, models or the
    explorer: what sits low really is low."""
    code = (f"import sys, {module}; "
            "bad = [m for m in sys.modules if m.startswith(('core.training', 'core.models', "
            "'core.evaluation', 'core.jobs', 'core.benchmarks', 'explorer'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr

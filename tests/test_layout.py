"""The shape of the code: one namespace, four floors, small rooms, public surfaces.

Read from the source files themselves (ast), so a change that breaks a rule fails here before review."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ("scripts", "api", "layers", "gis")  # each may import only the floors after it
MAX_LINES = 800


def _modules() -> list[Path]:
    return sorted(p for floor in FLOORS for p in (ROOT / floor).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every absolute import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name, []) for a in node.names)
    return out


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


@pytest.mark.parametrize("top", [*FLOORS, "tests"])
def test_code_imports_the_installed_namespace_never_bare_folders(top: str) -> None:
    """`from gridpatrol.gis import …`, never `from gis import …`: the folders install as gridpatrol.*."""
    bare = [f"{_where(p, line)} imports {mod}" for p in (ROOT / top).rglob("*.py")
            for line, mod, _ in _imports(p) if mod.split(".")[0] in FLOORS]
    assert not bare, "\n".join(bare)


def test_floors_import_only_downwards() -> None:
    """scripts → api → layers → gis: gis imports no other floor, layers not api or scripts, api not scripts."""
    wrong = []
    for path in _modules():
        floor = path.relative_to(ROOT).parts[0]
        for line, mod, _ in _imports(path):
            parts = mod.split(".")
            if parts[0] == "gridpatrol" and len(parts) > 1 and parts[1] in FLOORS:
                if FLOORS.index(parts[1]) < FLOORS.index(floor):
                    wrong.append(f"{_where(path, line)}: {floor} imports {mod}")
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_another_modules_private_names() -> None:
    private = [f"{_where(p, line)}: {name} from {mod}" for p in _modules() for line, mod, names in _imports(p)
               if mod.startswith("gridpatrol.") for name in names if name.startswith("_")]
    assert not private, "\n".join(private)


def test_no_module_is_longer_than_the_limit() -> None:
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in _modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, "\n".join(long)


def test_benchmarks_stay_tools() -> None:
    """Tests never import benchmark code (scripts/bench); only benchmarks may import test helpers (tests/)."""
    wrong = [f"{_where(p, line)} imports {mod}" for p in (ROOT / "tests").rglob("*.py")
             for line, mod, _ in _imports(p) if mod.startswith("gridpatrol.scripts.bench")]
    wrong += [f"{_where(p, line)} imports {mod}" for p in _modules() if "bench" not in p.relative_to(ROOT).parts
              for line, mod, _ in _imports(p) if mod.split(".")[0] == "tests"]
    assert not wrong, "\n".join(wrong)
    assert not list((ROOT / "scripts").glob("bench*.py")), "benchmarks live in scripts/bench/"

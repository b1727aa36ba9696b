"""The package's shape: wings import only wings below them, no import circle, no private name
imported from another module (DESIGN.md, "Layout")."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "emovox"
# data <- models <- inference <- evaluation <- training <- cli: a wing may import the ones before it.
WINGS = ["data", "models", "inference", "evaluation", "training"]
TOP = {"config", "errors", "labels", "rundir", "figures", "__init__"}  # imported by every wing


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) for every emovox import in the file, lazy ones included."""
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "emovox":
                out.append((target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.split(".")[0] == "emovox"]
    return out


def _files() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _known() -> set[str]:
    return {_module(p) for p in _files()}


def _target_module(target: str, name: str, known: set[str]) -> str:
    """``from target import name`` imports module ``target.name`` when that is a module."""
    return f"{target}.{name}" if f"{target}.{name}" in known else target


def _wing(mod: str) -> str | None:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in WINGS else None


def test_no_import_circle():
    known = _known()
    graph = {m: set() for m in known}
    for p in _files():
        for target, names in _imports(p):
            for t in ({_target_module(target, n, known) for n in names} if names else {target}):
                if t in known and t != _module(p):
                    graph[_module(p)].add(t)
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in graph[m]:
            if state.get(t) == 1:
                pytest.fail("import circle: " + " -> ".join(stack[stack.index(t):] + [m, t]))
            if t not in state:
                visit(t, stack + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_wings_import_only_wings_below():
    known = _known()
    bad = []
    for p in _files():
        here = _wing(_module(p))
        for target, names in _imports(p):
            for t in ({_target_module(target, n, known) for n in names} if names else {target}):
                there = _wing(t)
                if here and there and WINGS.index(there) > WINGS.index(here):
                    bad.append(f"{_module(p)} imports {t}")
                top = t.split(".")[1] if t.count(".") >= 1 else ""
                if here and there is None and top in {"cli", "demo_pipeline"}:
                    bad.append(f"{_module(p)} imports {t}")
    assert not bad, "\n".join(bad)


def test_no_private_name_crosses_modules():
    bad = [f"{_module(p)} imports {target}.{n}" for p in _files() for target, names in _imports(p)
           for n in names if n.startswith("_") and n != "__version__"]
    assert not bad, "\n".join(bad)


def test_modules_stay_small():
    big = [f"{p.relative_to(SRC)}: {n}" for p in _files() if (n := len(p.read_text().splitlines())) > 500]
    assert not big, f"modules over 500 lines: {big}"

"""The package's import graph has layers: no cycle, imports inside functions included, and no
import of advfit's own modules hidden inside a function (a cycle hidden there is still one)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

SRC = ROOT / "src"


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")


def imports(path: Path) -> list[tuple[ast.stmt, str, bool]]:
    """(node, module imported, inside a function) of every import of ``path``, with relative
    imports made absolute; ``if TYPE_CHECKING:`` blocks, which never run, left out."""
    tree = ast.parse(path.read_text())
    package = (
        module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    )
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    inside = {
        id(n)
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        for n in ast.walk(f)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(node, name, id(node) in inside) for name in names]
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges[name] = {
            target
            for _, target, _ in imports(path)
            if target in modules and target != name and not target.startswith(name + ".")
        }
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f():\n    from pkg.a import x\n")
    (package / "c.py").write_text("import pkg.a\n")
    monkeypatch.setattr(f"{__name__}.SRC", tmp_path)
    assert cycles(graph()) == [["pkg.a", "pkg.b"]]


def test_no_import_cycle_in_the_package():
    assert cycles(graph()) == []


def test_no_module_of_advfit_is_imported_inside_a_function():
    """Lazy imports of third-party libraries (Lightning, torch, wandb, scikit-learn) keep
    start-up light; one of advfit's own modules imported inside a function hides a layer."""
    hidden = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {target}"
        for path in sorted(SRC.rglob("*.py"))
        for node, target, inside in imports(path)
        if inside and target.startswith("advfit")
    ]
    assert hidden == []


def test_the_entry_points_import_lightning_late_and_say_why():
    """train.py and evaluate.py import the package's tasks inside main, after their checks,
    so that a bad value is refused before Lightning is imported; a comment says so."""
    for entry in ("train.py", "evaluate.py"):
        text = (ROOT / entry).read_text()
        main = next(
            n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == "main"
        )
        lines = text.splitlines()[main.lineno - 1 : main.end_lineno]
        assert any("from advfit.tasks import" in line for line in lines), entry
        assert any(line.strip().startswith("#") and "Lightning" in line for line in lines), entry

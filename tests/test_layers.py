"""The package's layers: a module imports only its own layer and those below, and the modules
import one another without cycles. Lazy imports inside functions count as imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import reasonbench

PACKAGE = Path(reasonbench.__file__).parent

# lowest first; tools and leaderboard share a layer and import neither each other
LAYERS = {"util": 0, "nn": 1, "tasks": 2, "record": 3, "model": 4, "config": 5, "execution": 6,
          "tools": 7, "leaderboard": 7, "cli": 8}
# the package's own modules at the top: the public API and the paths kept for plugins
FACADES = {"__init__", "__main__", "module", "recursive", "optim", "testing", "measure"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Every reasonbench module ``path`` imports (``from reasonbench.x import name`` counts
    ``reasonbench.x.name`` when that is a module, else ``reasonbench.x``)."""
    tree = ast.parse(source if source is not None else path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "reasonbench"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "reasonbench":
                continue
            for alias in node.names:
                child = f"{module}.{alias.name}"
                found.add(child if is_module(child) else module)
    return found


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative / "__init__.py").is_file()


def layer(name: str) -> tuple[str, int]:
    """The layer a module belongs to: its subpackage's, or the top for the facades."""
    parts = name.split(".")
    if len(parts) == 1 or parts[1] in FACADES:
        return "top", 99
    return parts[1], LAYERS[parts[1]]


def violations(name: str, imports: set[str]) -> list[str]:
    own, rank = layer(name)
    found = []
    for target in sorted(imports):
        other, other_rank = layer(target)
        if other == own or own == "top":
            continue
        if other_rank >= rank:
            found.append(f"{name} imports {target} ({other}, layer {other_rank}; {own} is layer {rank})")
    return found


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def test_every_subpackage_has_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(LAYERS)
    loose = {p.stem for p in PACKAGE.glob("*.py")}
    assert loose == FACADES, "a module at the top of the package belongs in a layer"


def test_no_module_imports_a_higher_layer() -> None:
    problems = [v for name, path in all_modules().items() for v in violations(name, imported_modules(path))]
    assert problems == []


def test_an_upward_import_is_caught() -> None:
    path = PACKAGE / "record" / "stats.py"
    source = path.read_text() + "\nfrom reasonbench.execution.execute import execute\n"
    problems = violations("reasonbench.record.stats", imported_modules(path, source))
    assert problems == ["reasonbench.record.stats imports reasonbench.execution.execute (execution, layer 6; record is layer 3)"]
    facade = violations("reasonbench.model.recursive", {"reasonbench.optim"})
    assert facade == ["reasonbench.model.recursive imports reasonbench.optim (top, layer 99; model is layer 4)"]


def test_modules_import_one_another_without_cycles() -> None:
    modules = all_modules()
    graph = {name: {t for t in imported_modules(path) if t in modules and t != name} for name, path in modules.items()}
    for name in graph:  # a package's __init__ re-exporting its own modules is not a cycle of code
        if modules[name].name == "__init__.py":
            graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize("name", ["module", "recursive", "optim", "testing", "measure"])
def test_public_paths_are_the_real_modules(name: str) -> None:
    import importlib

    public = importlib.import_module(f"reasonbench.{name}")
    assert public.__name__.startswith("reasonbench.") and public.__name__ != f"reasonbench.{name}"
    assert getattr(reasonbench, name) is public


def test_no_subpackage_shadows_a_public_name() -> None:
    """``reasonbench.run`` is the function: importing a submodule binds its package's name on
    ``reasonbench``, so a subpackage named like a public function would replace it."""
    import importlib

    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert not packages & set(reasonbench.__all__)
    for name in packages:
        importlib.import_module(f"reasonbench.{name}")
    assert callable(reasonbench.run) and callable(reasonbench.create_model)


MAX_FUNCTION_LINES = 60


def test_every_function_reads_in_one_screen() -> None:
    """No function of the package or the built-in plugins is longer than 60 lines (docstring
    included): a longer one is split where it divides."""
    plugins = PACKAGE.parent / "plugins"
    roots = [PACKAGE] + ([plugins] if plugins.is_dir() else [])
    long = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        long.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []

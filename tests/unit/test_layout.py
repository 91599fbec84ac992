"""The import direction the "Code map" of CONTRIBUTING.md promises: the pure core never reaches the engine."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "luma_compose"
PURE = sorted([*PKG.glob("compose/*.py"), PKG / "records.py", PKG / "contract.py", PKG / "errors.py",
               *PKG.glob("routing/*.py"), PKG / "proxy" / "caddy_config.py", PKG / "deploy" / "plan.py",
               PKG / "deploy" / "subnets.py", PKG / "swarm" / "routes.py", PKG / "swarm" / "shadow.py",
               PKG / "swarm" / "options.py"])


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module a file imports (relative imports resolved)."""
    pkg = ".".join(path.relative_to(PKG.parent).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = pkg.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(PKG)))
def test_the_pure_core_never_imports_the_engine_or_the_docker_sdk(path):
    bad = {m for m in imported_modules(path)
           if m.startswith("luma_compose.engine") or m == "docker" or m.startswith("docker.")
           or m.startswith("luma_compose.cli") or m == "click"}
    assert not bad, f"{path.relative_to(PKG)} imports {sorted(bad)}"


def test_the_check_sees_relative_imports():
    # a file of proxy/ importing ..engine must be seen, or the test above proves nothing
    mods = imported_modules(PKG / "proxy" / "controller.py")
    assert "luma_compose.proxy.caddy_config" in mods and "luma_compose.records" in mods


def test_every_test_module_has_a_name_of_its_own():
    # tests/ has no __init__.py files: pytest imports test modules by basename, and two files of one
    # name (say tests/unit/test_x.py and tests/e2e/test_x.py) stop the whole run at collection.
    tests = Path(__file__).resolve().parents[1]
    names: dict[str, list[str]] = {}
    for p in tests.rglob("test_*.py"):
        names.setdefault(p.name, []).append(str(p.relative_to(tests)))
    assert {n: ps for n, ps in names.items() if len(ps) > 1} == {}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in the file: a function-level import is an edge too)."""
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG.parent).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return {name: {m for m in imported_modules(p) if m in mods and m != name} for name, p in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every set of modules that import each other, round a circle (strongly connected, more than one)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out = []

    def visit(v: str) -> None:
        order[v] = low[v] = len(order)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in order:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], order[w])
        if low[v] == order[v]:
            comp = stack[stack.index(v):]
            del stack[stack.index(v):]
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in order:
            visit(v)
    return out


def test_no_module_imports_itself_round_a_circle():
    assert cycles(import_graph()) == []


def test_the_circle_check_finds_circles():
    # the check above must be able to fail: a circle of three, a pair, and a module outside them
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e", "a"}, "e": {"d"}, "f": {"a"}}
    assert cycles(g) == [["a", "b", "c"], ["d", "e"]]
    graph = import_graph()
    assert "luma_compose.cli.options" in graph["luma_compose.cli.deploy"]  # relative imports are edges
    assert "luma_compose.cli.swarm" in graph["luma_compose.cli.main"]  # and so are imports inside functions


def test_only_the_engine_runs_programs():
    # engine/ is the one place that starts processes (docker, docker compose, systemctl)
    runs = {str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
            if not p.relative_to(PKG).parts[0] == "engine"
            and imported_modules(p) & {"subprocess", "os.system", "os.popen", "pty", "asyncio.subprocess"}}
    assert runs == set()
    assert "subprocess" in imported_modules(PKG / "engine" / "systemd.py")  # the check sees what it looks for

"""The import direction the "Code map" of CONTRIBUTING.md promises: the pure core never reaches the engine."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "luma_compose"
PURE = sorted([*PKG.glob("compose/*.py"), PKG / "records.py", PKG / "contract.py", PKG / "errors.py",
               *PKG.glob("routing/*.py"), PKG / "proxy" / "caddy_config.py", PKG / "deploy" / "plan.py",
               PKG / "deploy" / "subnets.py", PKG / "swarm" / "stack.py", PKG / "swarm" / "routes.py"])


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

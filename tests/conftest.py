"""Gating of the e2e tests (marked ``@pytest.mark.e2e``).

They need a Docker engine that answers ``docker info`` and Compose v2 (``docker compose version``).

* Engine present: they run.
* Engine absent: they are skipped, with one line at the top of the run saying why.
* ``LUMA_E2E=required`` (CI sets it through scripts/test): an absent engine makes every e2e test
  FAIL with that reason instead; CI never silently skips them.
* ``LUMA_E2E=skip``: skip them on purpose.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

# tests/support (the record factory, the fake engine) is importable as `support`.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# No test writes to the real ~/.cache: the schema gate cache (and anything else under XDG_CACHE_HOME)
# goes to a directory of this run, for the tests and every luma-compose they start.
import tempfile  # noqa: E402

_CACHE = os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="luma-test-cache-")


def _run(cmd: list[str], timeout: float = 30) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"'{' '.join(cmd)}' timed out after {timeout:.0f}s"
    except OSError as e:
        return 127, str(e)
    return p.returncode, (p.stdout + p.stderr).strip()


@lru_cache(maxsize=1)
def engine_problem() -> str | None:
    """Why the e2e tests cannot run here, or None when they can."""
    if shutil.which("docker") is None:
        return "no 'docker' command on PATH (install Docker, or run scripts/test as root to install it)"
    rc, out = _run(["docker", "info", "--format", "{{.ServerVersion}}"])
    if rc != 0 or not out or "error" in out.lower():
        first = out.splitlines()[-1] if out else f"exit {rc}"
        return f"the Docker engine does not answer 'docker info': {first}"
    rc, out = _run(["docker", "compose", "version", "--short"])
    if rc != 0:
        first = out.splitlines()[-1] if out else f"exit {rc}"
        return f"Docker Compose v2 is missing ('docker compose version' failed: {first})"
    if not out.lstrip("v").startswith("2."):
        return f"Docker Compose v2 is needed, found {out!r}"
    return None


def e2e_mode() -> str:
    return os.environ.get("LUMA_E2E", "").strip().lower()


def _has_e2e(items: list[pytest.Item]) -> bool:
    return any(item.get_closest_marker("e2e") for item in items)


def pytest_report_header(config: pytest.Config) -> list[str]:
    mode = e2e_mode()
    if mode == "skip":
        return ["e2e: skipped (LUMA_E2E=skip)"]
    problem = engine_problem()
    if problem is None:
        return ["e2e: Docker engine found, e2e tests will run"]
    if mode == "required":
        return [f"e2e: LUMA_E2E=required but no usable engine, e2e tests will FAIL: {problem}"]
    return [f"e2e: SKIPPED, {problem}. Set LUMA_E2E=required to make this a failure."]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _has_e2e(items):
        return
    mode = e2e_mode()
    if mode == "skip":
        marker = pytest.mark.skip(reason="LUMA_E2E=skip")
    else:
        problem = engine_problem()
        if problem is None or mode == "required":
            return
        marker = pytest.mark.skip(reason=f"e2e: {problem}")
    for item in items:
        if item.get_closest_marker("e2e"):
            item.add_marker(marker)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("e2e") and e2e_mode() == "required":
        problem = engine_problem()
        if problem is not None:
            pytest.fail(f"LUMA_E2E=required but the e2e tests cannot run: {problem}", pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)

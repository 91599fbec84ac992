"""Which tests must share one pytest-xdist worker (``--dist loadgroup``).

``scripts/test`` runs the whole suite on several xdist workers. Two kinds of tests must not be
spread over them:

* **engine alone** (group ``engine-alone``): tests that start a private dockerd
  (tests/support/private_engine.py) or a private swarm (tests/support/cluster.py). Those use
  fixed network-namespace names and address ranges, the work of the machine-wide
  ``/tmp/luma-private-engine.lock``, so they run one after another on ONE worker; that also keeps
  the session ``swarm`` fixture built once. Found automatically: the test, or a fixture it uses,
  names ``PrivateEngine`` or builds a cluster (``proxied_cluster``, ``clusterkit.cluster``); mark
  anything else that needs it with ``@pytest.mark.engine_alone``.
* **one module** (group ``module:<file>``): tests that share a module-scoped fixture (a proxy and
  projects set up once for the module) stay together, so the fixture is still set up once.

Without xdist the group marks change nothing.
"""

from __future__ import annotations

import inspect
from functools import lru_cache

import pytest

ENGINE_ALONE = "engine-alone"
MARKER = "engine_alone"
#: What in a test's or fixture's source means "starts a private engine or a private swarm".
PRIVATE_ENGINE_WORDS = ("PrivateEngine", "proxied_cluster", "clusterkit.cluster(")


@lru_cache(maxsize=None)
def _source(func) -> str:
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        return ""


def starts_a_private_engine(func) -> bool:
    src = _source(inspect.unwrap(func))
    return any(w in src for w in PRIVATE_ENGINE_WORDS)


def _fixturedefs(item: pytest.Item) -> list:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return [d for name in item.fixturenames for d in info.name2fixturedefs.get(name, ())]


def group_of(item: pytest.Item) -> str | None:
    """The xdist group of a test, or None when it may run on any worker."""
    defs = _fixturedefs(item)
    if (item.get_closest_marker(MARKER)
            or starts_a_private_engine(getattr(item, "function", None))
            or any(starts_a_private_engine(d.func) for d in defs)):
        return ENGINE_ALONE
    if any(d.scope in ("module", "package") for d in defs):
        return f"module:{item.nodeid.split('::')[0]}"
    return None


def mark(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put every test that has a group into its xdist group; refuse xdist without loadgroup
    when a private engine test is collected (the plain ``load`` mode ignores groups)."""
    alone = False
    for item in items:
        group = group_of(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            alone = alone or group == ENGINE_ALONE
    dist = getattr(config.option, "dist", "no")
    if alone and getattr(config.option, "numprocesses", None) and dist not in ("no", "loadgroup"):
        raise pytest.UsageError(
            f"tests that start a private engine must all run on one worker: use --dist loadgroup, "
            f"not --dist {dist} (or run without -n)")

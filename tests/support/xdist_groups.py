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

Without xdist the group marks change nothing. Under xdist without ``--dist loadgroup``, or when
pytest-xdist could not apply the groups, the private engine tests fail at setup saying why
(:func:`check`), before any engine starts.
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


def mark(items: list[pytest.Item]) -> None:
    """Put every test that has a group into its xdist group."""
    for item in items:
        group = group_of(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


_UNSAFE = pytest.StashKey[str]()


def check(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker, after pytest-xdist has put each group into its node ids (``nodeid@group``,
    what its loadgroup scheduler reads): when the private engine tests are not kept on one worker,
    they fail at setup with the reason (:func:`refuse_unsafe`) instead of starting engines on two
    workers at once. That is a run with -n but not --dist loadgroup, or a pytest whose node ids
    pytest-xdist cannot change (pytest 9.2: it then silently does not group, pytest-xdist #1386)."""
    if not hasattr(config, "workerinput"):
        return
    alone = [i for i in items if any(m.args[:1] == (ENGINE_ALONE,) for m in i.iter_markers("xdist_group"))]
    if not getattr(config.option, "loadgroup", False):
        why = "run with -n N --dist loadgroup (bash scripts/test does), or without -n"
    elif any("@" not in i.nodeid.rpartition("]")[2] for i in alone):
        why = (f"pytest-xdist did not group them: with pytest {pytest.__version__} --dist loadgroup "
               "does not work (pytest-xdist issue #1386); install the pytest pyproject.toml names")
    else:
        return
    for item in alone:
        item.stash[_UNSAFE] = why


def refuse_unsafe(item: pytest.Item) -> None:
    why = item.stash.get(_UNSAFE, None)
    if why is not None:
        pytest.fail(f"tests that start a private engine must all run on one xdist worker: {why}", pytrace=False)

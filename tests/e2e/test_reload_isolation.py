"""Issue 19, item 1: another project's deploys, syncs and config loads never fail a request of a
quiet project. Real engine, real compose, real Caddy proxy, real HTTP.

The quiet project is one busybox httpd replica (one connection per request, a listen backlog of
9) under several concurrent keep-alive clients: its accept queue overflows now and then, so the
proxy always has requests in its retry loop. Before the fix every config load ended those
retries at once with a 503 (the old handler's context is cancelled when a load replaces it).
"""

from __future__ import annotations

import pytest

import dockerkit as dk
from luma_compose.proxy.container import LIVE_PATH
from test_deploy import SELECT, Traffic, env, new_project, source  # noqa: F401  (env: fixture)

pytestmark = pytest.mark.e2e

CLIENTS = 12
REDEPLOYS = 3
RELOADS = 6


def test_other_projects_redeploys_syncs_and_reloads_fail_no_request_of_a_quiet_project(env, busybox_image):
    quiet, quiet_host = new_project(env, "quiet")
    other, other_host = new_project(env, "busy")
    env.deploy(quiet, source(quiet, busybox_image, quiet_host, "q", replicas=1, sidecar=False))
    env.deploy(other, source(other, busybox_image, other_host, "v0", replicas=1))
    clients = [Traffic(env, quiet_host) for _ in range(CLIENTS)]
    for c in clients:
        c.__enter__()
    try:
        for i in range(REDEPLOYS):
            env.deploy(other, source(other, busybox_image, other_host, f"v{i + 1}", replicas=1))
            dk.run([*dk.luma_compose_cmd(), "proxy", "sync", "--name", env.proxy], timeout=120)
        for _ in range(RELOADS):  # a load that changes nothing replaces every handler all the same
            dk.docker("exec", env.proxy, "caddy", "reload", "--config", LIVE_PATH, "--force")
    finally:
        for c in clients:
            c.__exit__(None, None, None)
    outcomes = sum((c.outcomes for c in clients), start=type(clients[0].outcomes)())
    ok = f"{quiet}/web-q"
    failed = {k: v for k, v in outcomes.items() if k != ok}
    assert outcomes[ok] > 100 * CLIENTS, outcomes  # the load ran the whole time
    assert not failed, f"requests of the quiet project failed: {failed} (answered: {outcomes[ok]})"
    assert env.get(other_host)[0] == 200

"""Issue 23, item 1: stop-first rollouts (deploy/stopfirst.py). Real engine, compose, Caddy, HTTP.

The app takes a while to start (it sleeps before it listens) and must never run twice: each
container appends to a file on a shared volume while it runs, so two at once would be seen.
"""

from __future__ import annotations

import pytest

import dockerkit as dk
from test_deploy import SELECT_KEY, Traffic, block_yaml, env, new_project, running  # noqa: F401  (env: fixture)

pytestmark = pytest.mark.e2e

BOOT = 2  # seconds before the app listens


def app(project: str, image: str, host: str, version: str, *, broken: bool = False, xluma: bool = False) -> str:
    """xluma: ask with `x-luma: {rollout: stop-first}`, else with Compose's `deploy.update_config.order`."""
    # a lock on the shared volume: a second copy running at the same time exits with an error
    # On SIGTERM it stops the way a well-behaved server does: it stops accepting (busybox httpd's
    # parent exits; the proxy then holds new requests), lets a response already being written finish
    # (each connection is a forked child), then leaves. Exiting at once cut a response mid-body when
    # the stop met a request in flight: that is the app's part, whatever the proxy does (docs/releases.md).
    start = (f"mkdir -p /data; if ! mkdir /data/lock; then echo two copies >> /data/clash; fi; sleep {BOOT}; "
             "trap 'kill $$pid; sleep 1; rmdir /data/lock; exit 0' TERM; /usr/local/bin/serve & pid=$$!; wait")
    if broken:
        start = "sleep 1; exit 3"
    web = {
        "image": image,
        "command": ["sh", "-c", start],
        "environment": {"PROJECT": project, "SERVICE": f"web-{version}"},
        "volumes": ["data:/data"],
        "stop_grace_period": "5s",
        "deploy": {"update_config": {"order": "stop-first"}},
        "labels": {SELECT_KEY: dk.RUN_ID},
        "x-luma": {"hosts": [host], "port": 3000, "health": "/up"},
    }
    if xluma:
        del web["deploy"]
        web["x-luma"]["rollout"] = "stop-first"
    return block_yaml({"name": project, "services": {"web": web}, "volumes": {"data": {}}})


def clash(project: str) -> str:
    (cid,) = running(project)
    return dk.docker("exec", cid, "sh", "-c", "cat /data/clash 2>/dev/null || true").strip()


def test_a_stop_first_deploy_under_load_fails_no_request_and_never_runs_two_copies(env, busybox_image):
    project, host = new_project(env, "stopfirst")
    env.deploy(project, app(project, busybox_image, host, "v1"))
    v1 = running(project)
    with Traffic(env, host) as t:
        r = env.deploy(project, app(project, busybox_image, host, "v2"))
    v2 = running(project)
    assert len(v2) == 1 and not (v1 & v2)
    assert clash(project) == ""
    failed = {k: v for k, v in t.outcomes.items() if k not in (f"{project}/web-v1", f"{project}/web-v2")}
    assert t.outcomes[f"{project}/web-v2"] > 0 and not failed, t.outcomes
    assert "stop-first" in r.stderr, r.stderr


def test_a_failed_stop_first_version_brings_the_old_container_back(env, busybox_image):
    project, host = new_project(env, "stopfirstbad")
    env.deploy(project, app(project, busybox_image, host, "v1", xluma=True))
    v1 = running(project)
    r = env.deploy(project, app(project, busybox_image, host, "v2", broken=True, xluma=True), "--timeout", "15",
                   check=False)
    assert "stop-first" in r.stderr, r.stderr
    assert r.returncode == 1, r.stderr
    assert running(project) == v1
    names = dk.docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{.Names}}")
    assert len(names.split()) == 1 and "draining" not in names
    assert env.get(host) == (200, env.get(host)[1]) and env.get(host)[1].startswith(f"{project}/web-v1")

"""Issue 22 item 4: maintenance survives an engine restart (a reboot in miniature) with no luma-compose
process running: the proxy resumes the config it served, the page, and the state is still on the
engine for the next sync. A private dockerd of this test's own (tests/support/private_engine.py):
run it under the private-engine lock (CONTRIBUTING.md)."""

from __future__ import annotations

import contextlib
import os
import time

import pytest

import dockerkit as dk
import proxykit as pk

pytestmark = pytest.mark.e2e


@pytest.fixture
def private_engine(busybox_image, caddy_image):
    from private_engine import PrivateEngine

    if os.geteuid() != 0:
        pytest.fail("the engine-restart test runs a private dockerd and must run as root")
    with PrivateEngine.started("lm" + dk.RUN_ID[:6]) as eng:
        eng.load_image(busybox_image)
        eng.load_image(caddy_image)
        yield eng


def test_maintenance_survives_an_engine_restart_and_the_next_sync(private_engine, busybox_image, caddy_image,
                                                                   tmp_path):
    eng = private_engine
    engine = pk.Engine(env=eng.env, address=eng.ns_ip)
    with contextlib.ExitStack() as stack:
        proxy = stack.enter_context(pk.proxy(engine, caddy_image, "--tls", "off", http_port="0.0.0.0:18081"))
        name, other = dk.unique("mshop"), dk.unique("mother")
        host, other_host = f"{name}.test", f"{other}.test"
        always = {"restart": "unless-stopped"}
        stack.enter_context(pk.project(engine, tmp_path, name, busybox_image, {"web": {"hosts": [host], **always}}))
        stack.enter_context(pk.project(engine, tmp_path, other, busybox_image,
                                       {"web": {"hosts": [other_host], **always}}))
        proxy.sync(check=True)
        engine.cli("maintenance", "on", "-p", name, "--message", "Back soon", "--proxy-name", proxy.name)
        assert proxy.get(host)[0] == 503

        eng.restart()  # every container stops, and comes back by its policy; nothing of ours runs
        seen: list[tuple[int, str]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            seen.append(proxy.get(host, timeout=10))
            time.sleep(0.1)
        answered = [(c, b) for c, b in seen if c != 0]
        assert answered and all(c == 503 and "Back soon" in b for c, b in answered), seen[-5:]
        assert pk.wait_for(lambda: proxy.get(other_host)[0] == 200, timeout=30)  # the other project is served
        proxy.sync(check=True)  # the state is still on the engine: the next sync keeps it
        assert proxy.get(host)[0] == 503
        engine.cli("maintenance", "off", "-p", name, "--proxy-name", proxy.name)
        code, body = proxy.get(host)
        assert code == 200 and body.startswith(f"{name}/web/")

"""Issue 19, item 1: another project's deploys, syncs and config loads never fail a request of a
quiet project, but for the one class out of our reach (a new connection the old server had read no
request on, closed by Go's http.Server.Shutdown: docs/deploy.md), which the first test counts apart
under a small bound. Real engine, real compose, real Caddy proxy, real HTTP.

The quiet project is one busybox httpd replica (one connection per request, a listen backlog of
9) under several concurrent keep-alive clients: its accept queue overflows now and then, so the
proxy always has requests in its retry loop. Before the fix every config load ended those
retries at once with a 503 (the old handler's context is cancelled when a load replaces it).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections import Counter

import pytest

import dockerkit as dk
from proxykit import wait_for
from test_deploy import Traffic, env, new_project, source  # noqa: F401  (env: fixture)
from test_proxy import compose_text, proxy_container

#: The config Caddy runs, as it saved it (what `caddy reload --force` of an unchanged config loads).
AUTOSAVE = "/data/config/caddy/autosave.json"

pytestmark = pytest.mark.e2e

CLIENTS = 12
REDEPLOYS = 3
RELOADS = 6
#: Fresh connections closed before their request was read, across all the loads of the test (about 15).
UNREAD_BOUND = 3


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
            dk.docker("exec", env.proxy, "caddy", "reload", "--config", AUTOSAVE, "--force")
    finally:
        for c in clients:
            c.__exit__(None, None, None)
    outcomes = sum((c.outcomes for c in clients), start=type(clients[0].outcomes)())
    ok = f"{quiet}/web-q"
    # The one failure a load still causes, out of our reach (docs/deploy.md, golang/go#75591): a new
    # connection the old server accepted but had read no request on is closed with no byte of answer
    # (RemoteDisconnected on a fresh connection; tests/unit/test_caddy_config.py shows the mechanism).
    # It needs a reconnect to land within a load: about one in 20,000 requests here. Bounded, so
    # that anything else (a gap in listening, a crash) still fails the test.
    unread = outcomes.pop("error: RemoteDisconnected", 0)
    failed = {k: v for k, v in outcomes.items() if k != ok}
    print(f"\n[quiet project] answered {outcomes[ok]}, closed before their request was read {unread}")
    assert outcomes[ok] > 100 * CLIENTS, outcomes  # the load ran the whole time
    assert not failed, f"requests of the quiet project failed: {failed} (answered: {outcomes[ok]})"
    assert unread <= UNREAD_BOUND, f"{unread} fresh connections closed unanswered (answered: {outcomes[ok]})"
    assert env.get(other_host)[0] == 200


def _fetch(port: int, host: str, tls: bool) -> tuple[int, str]:
    """One GET on a new connection (HTTPS without verification: the point is the proxy's answer)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=40)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        raw = ctx.wrap_socket(raw, server_hostname=host)
    with raw:
        raw.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := raw.recv(65536):
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body.strip()


@pytest.mark.parametrize("tls", ["off", "internal"])
def test_a_request_waiting_for_its_container_survives_a_config_load(busybox_image, caddy_image, tmp_path, tls):
    """A request that waits for a stopped single replica (the route keeps it as standby) is still
    answered by it once it is back, although a config load replaced its handler meanwhile."""
    name = dk.unique("waitld")
    host = f"{name}.example.test"
    f = dk.write(tmp_path / "compose.yaml", compose_text(name, busybox_image, {"web": {"hosts": [host]}}))
    with dk.compose_project(name, f), proxy_container(caddy_image, "--tls", tls) as proxy:
        proxy.sync()
        port = proxy.port if tls == "off" else proxy.https_port()
        assert wait_for(lambda: _fetch(port, host, tls != "off")[0] == 200, timeout=30)
        container = f"{name}-web-1"
        dk.docker("stop", "-t", "1", container)
        got: list[tuple[int, str]] = []
        waiting = threading.Thread(target=lambda: got.append(_fetch(port, host, tls != "off")))
        waiting.start()
        time.sleep(1.5)  # the request is in the retry loop of the handler the load replaces
        dk.docker("exec", proxy.name, "caddy", "reload", "--config", AUTOSAVE, "--force")
        time.sleep(1)
        dk.docker("start", container)
        waiting.join(60)
        assert got and got[0][0] == 200 and got[0][1].startswith(f"{name}/web/"), got


def _new_connection_gets(addr: str, stop: threading.Event, outcomes: Counter) -> None:
    """GETs each on a new connection straight to the proxy container (no docker-proxy in between,
    which would turn the proxy's reset into a plain close): answered, reset, or closed unanswered."""
    while not stop.is_set():
        try:
            with socket.create_connection((addr, 80), timeout=10) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: nobody.example.test\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            outcomes["answered" if data.startswith(b"HTTP/1.1 ") else "closed unanswered"] += 1
        except ConnectionResetError:
            outcomes["reset"] += 1
        except OSError as e:
            outcomes[f"error: {type(e).__name__}"] += 1


def test_a_config_load_resets_no_connection_waiting_to_be_accepted(caddy_image):
    """Caddy binds a new socket for each config and closes the old one; Linux resets what still
    waits in a closed socket's accept queue unless tcp_migrate_req hands it over (proxy/handover.py).
    Clients opening a connection per request, loads one after another: no connection is reset.
    Without the setting this test saw 72 resets over its 24 loads here. Connections the old config's
    server accepted but had read no request on are closed unanswered (printed, not asserted: Go's
    http.Server.Shutdown does it since Go 1.25, golang/go#75591; see docs/deploy.md)."""
    with proxy_container(caddy_image, "--tls", "off") as proxy:
        c = dk.inspect(proxy.name)
        assert c["HostConfig"].get("Sysctls") == {"net.ipv4.tcp_migrate_req": "1"}
        addr = next(n["IPAddress"] for n in c["NetworkSettings"]["Networks"].values() if n["IPAddress"])
        stop, outcomes = threading.Event(), Counter()
        clients = [threading.Thread(target=_new_connection_gets, args=(addr, stop, outcomes), daemon=True)
                   for _ in range(CLIENTS)]
        for t in clients:
            t.start()
        try:
            for _ in range(4 * RELOADS):
                dk.docker("exec", proxy.name, "caddy", "reload", "--config", AUTOSAVE, "--force")
        finally:
            stop.set()
            for t in clients:
                t.join(30)
        print(f"\n[new connections across {4 * RELOADS} loads] {dict(outcomes)}")
        assert outcomes["answered"] > 0, outcomes
        assert outcomes["reset"] == 0, outcomes

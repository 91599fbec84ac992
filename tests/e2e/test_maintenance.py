"""Issue 22 item 4: ``maintenance on|off`` and ``deploy --maintenance`` on one host. Real engine, real
compose, real Caddy proxy, real HTTP through the port the proxy publishes on 127.0.0.1.

The state is a labelled volume on the engine and Caddy's autosaved config: a `docker restart` of the
proxy with no luma-compose process keeps serving the page, and a `proxy sync` from a new process
keeps it on. Another project is served throughout, with no failed request.
"""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

import dockerkit as dk
from proxykit import wait_for
from test_deploy import Traffic, env, new_project, running, source  # noqa: F401  (env: fixture)

pytestmark = pytest.mark.e2e

#: A page of one's own: braces that would be Caddy placeholders, non-ASCII text, markup.
PAGE = ("<!doctype html><html><body><h1>Wartung — {env.HOME} {http.request.host} \\{x}</h1>"
        "<style>p { color: red }</style><p>bald zurück</p></body></html>\n")


@pytest.fixture(autouse=True)
def _states_removed(env):
    """The deploy tests' environment, and the maintenance states of its projects removed at the end."""
    try:
        yield env
    finally:
        for p in env.projects:
            for v in dk.docker("volume", "ls", "-q", "--filter", f"label=luma.maintenance.project={p}",
                               check=False).split():
                dk.docker("volume", "rm", "-f", v, check=False)


def fetch(env, host: str) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", env.port, timeout=15)
    try:
        conn.request("GET", "/", headers={"Host": host})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    except (OSError, http.client.HTTPException) as e:
        return 0, {}, f"{type(e).__name__}: {e}"
    finally:
        conn.close()


def luma(*args: str, check: bool = True):
    return dk.run([*dk.luma_compose_cmd(), *args], check=check, timeout=300)


def maintenance(env, *args: str, check: bool = True):
    return luma("maintenance", *args, "--proxy-name", env.proxy, check=check)


def in_maintenance(env, host: str, text: str) -> bool:
    status, headers, body = fetch(env, host)
    return status == 503 and headers.get("retry-after") == "300" and text in body


def served_by_app(env, host: str) -> bool:
    return fetch(env, host)[0] == 200


def test_on_and_off_serve_the_page_then_the_app_and_never_fail_another_projects_request(env, busybox_image,
                                                                                       tmp_path):
    shop, shop_host = new_project(env, "mshop")
    quiet, quiet_host = new_project(env, "mquiet")
    env.deploy(shop, source(shop, busybox_image, shop_host, "v1", replicas=1, sidecar=False))
    env.deploy(quiet, source(quiet, busybox_image, quiet_host, "q", replicas=1, sidecar=False))
    before = running(shop)
    page = dk.write(tmp_path / "page.html", PAGE)
    with Traffic(env, quiet_host) as traffic:
        r = maintenance(env, "on", "-p", shop, "--message", "Back at 14:00 <b>UTC</b>")
        assert shop_host in r.stdout
        status, headers, body = fetch(env, shop_host)
        assert status == 503 and headers["retry-after"] == "300", (status, headers, body)
        assert headers["content-type"] == "text/html; charset=utf-8" and headers["x-content-type-options"] == "nosniff"
        assert "Back at 14:00 &lt;b&gt;UTC&lt;/b&gt;" in body  # the message is text, not markup
        assert running(shop) == before  # its containers keep running
        maintenance(env, "on", "-p", shop, "--page", str(page))
        status, headers, body = fetch(env, shop_host)
        assert status == 503 and body == PAGE  # as-is: no placeholder expanded, no byte changed
        routes = json.loads(luma("routes", "--name", env.proxy, "--format", "json").stdout)
        m = [r["maintenance"] for r in routes["routes"] if r["project"] == shop]
        assert m and m[0]["scope"] == "project" and m[0]["page_bytes"] == len(PAGE.encode())
        assert all(r["maintenance"] is None for r in routes["routes"] if r["project"] == quiet)
        status_doc = json.loads(luma("proxy", "status", "--name", env.proxy, "--format", "json").stdout)
        assert [r["maintenance"]["page_bytes"] for r in status_doc["routes"] if r["project"] == shop] == [len(PAGE.encode())]
        assert status_doc["proxy"]["in_sync"] is True
        assert "maintenance since" in luma("routes", "--name", env.proxy).stdout
        maintenance(env, "off", "-p", shop)
        assert wait_for(lambda: served_by_app(env, shop_host))
        time.sleep(1)  # the load keeps running across the last config load
    ok = f"{quiet}/web-q"
    failed = {k: v for k, v in traffic.outcomes.items() if k != ok}
    assert traffic.outcomes[ok] > 20 and not failed, traffic.outcomes


def test_maintenance_survives_a_proxy_restart_with_no_luma_compose_process_and_a_later_sync(env, busybox_image,
                                                                                            tmp_path):
    shop, shop_host = new_project(env, "mrest")
    quiet, quiet_host = new_project(env, "mrq")
    env.deploy(shop, source(shop, busybox_image, shop_host, "v1", replicas=1, sidecar=False))
    env.deploy(quiet, source(quiet, busybox_image, quiet_host, "q", replicas=1, sidecar=False))
    maintenance(env, "on", "-p", shop, "--service", "web", "--page", str(dk.write(tmp_path / "p.html", PAGE)))
    dk.docker("restart", env.proxy)  # nothing of luma-compose runs now
    assert wait_for(lambda: fetch(env, shop_host)[0] != 0, timeout=30)
    status, headers, body = fetch(env, shop_host)
    assert status == 503 and body == PAGE
    assert wait_for(lambda: served_by_app(env, quiet_host), timeout=30)
    luma("proxy", "sync", "--name", env.proxy)  # any later sync, from any process, reads the state again
    assert fetch(env, shop_host)[0] == 503
    env.deploy(shop, source(shop, busybox_image, shop_host, "v2", replicas=1, sidecar=False))  # and a deploy
    assert fetch(env, shop_host)[0] == 503
    maintenance(env, "off", "-p", shop, "--service", "web")
    status, _, body = fetch(env, shop_host)
    assert status == 200 and "web-v2" in body


def test_deploy_maintenance_shows_the_page_during_the_rollout_and_leaves_it_on_when_the_deploy_fails(env,
                                                                                                     busybox_image):
    shop, shop_host = new_project(env, "mdep")
    env.deploy(shop, source(shop, busybox_image, shop_host, "v1", replicas=1, sidecar=False))
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.append(fetch(env, shop_host)[0])
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        r = env.deploy(shop, source(shop, busybox_image, shop_host, "v2", replicas=1, sidecar=False), "--maintenance")
    finally:
        stop.set()
        t.join()
    assert "Maintenance on" in r.stderr and "Maintenance off" in r.stderr
    assert 503 in seen and seen[-1] == 200, seen  # the page during the rollout, the app after it
    status, _, body = fetch(env, shop_host)
    assert status == 200 and "web-v2" in body
    # a deploy that fails after maintenance went on leaves it on: the old version is not served either
    r = env.deploy(shop, source(shop, busybox_image, shop_host, "v3", replicas=1, sidecar=False, broken=True),
                   "--maintenance", check=False)
    assert r.returncode == 1 and "maintenance stays ON" in r.stderr, r.stderr
    assert in_maintenance(env, shop_host, "down for maintenance")
    maintenance(env, "off", "-p", shop)
    status, _, body = fetch(env, shop_host)
    assert status == 200 and "web-v2" in body


def test_bad_input_is_a_clear_usage_error(env, busybox_image, tmp_path):
    shop, _ = new_project(env, "mbad")
    env.deploy(shop, source(shop, busybox_image, f"{shop}.example.test", "v1", replicas=1, sidecar=False))
    (tmp_path / "latin1.html").write_bytes("<p>caf\xe9</p>".encode("latin-1"))
    cases = [(["on", "-p", dk.unique("nosuch")], "is routed"),
             (["off", "-p", dk.unique("nosuch")], "is routed"),
             (["on", "-p", shop, "--service", "db"], "routes no service db"),
             (["on", "-p", shop, "--page", str(tmp_path / "latin1.html")], "not UTF-8"),
             (["on", "-p", shop, "--page", str(tmp_path / "none.html")], "cannot read it"),
             (["on", "-p", shop, "--message", "a\x07b"], "control character")]
    for args, says in cases:
        r = maintenance(env, *args, check=False)
        assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert dk.docker("volume", "ls", "-q", "--filter", f"label=luma.maintenance.project={shop}") == ""

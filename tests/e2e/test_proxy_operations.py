"""Issue 10, items 10-12: operations that must never leave less than there was.

A failed ``proxy up`` leaves the old proxy serving (and no new volume); two deploys of one
project at once serialize on the engine; the HTTPS redirect keeps a non-443 port; ``routes``
says what Caddy serves. Real engine, real compose, real Caddy.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading

import dockerkit as dk
import proxykit as pk
from test_websocket import Deploys, deploys
from test_deploy import source


def _volumes(prefix: str) -> list[str]:
    return sorted(dk.docker("volume", "ls", "-q", "--filter", f"name={prefix}").split())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failed_proxy_up_leaves_the_old_proxy_serving(tmp_path, busybox_image, caddy_image):
    with contextlib.ExitStack() as stack:
        # a fixed port: the old proxy must come back on exactly it (0 would pick a new one)
        proxy = stack.enter_context(pk.proxy(pk.SHARED, caddy_image, "--tls", "off",
                                             http_port=f"127.0.0.1:{_free_port()}"))
        name = dk.unique("gmail")
        host = f"{name}.test"
        stack.enter_context(pk.project(pk.SHARED, tmp_path, name, busybox_image, {"web": {"hosts": [host]}}))
        proxy.sync(check=True)
        port = proxy.port
        before = dk.inspect(proxy.name)["Id"]
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        stack.callback(taken.close)
        busy = taken.getsockname()[1]
        vols = _volumes(proxy.name)
        res = pk.SHARED.cli("proxy", "up", "--name", proxy.name, "--http-port", f"127.0.0.1:{busy}",
                            "--volume", proxy.volume + "-new", check=False)
        assert res.returncode != 0 and "serving again" in res.stderr, (res.stdout, res.stderr)
        c = dk.inspect(proxy.name)
        assert c["Id"] == before and c["State"]["Status"] == "running"
        assert proxy.port == port  # old settings kept
        assert _volumes(proxy.name) == vols  # the attempt's new volume is gone
        assert pk.wait_for(lambda: proxy.get(host)[1].startswith(f"{name}/web/"), timeout=10), proxy.get(host)
        assert not dk.docker("ps", "-aq", "--filter", f"name={proxy.name}--").strip()


def test_two_deploys_of_one_project_at_once_serialize(tmp_path, busybox_image, caddy_image):
    with deploys(tmp_path, caddy_image) as d:
        a = dk.unique("twice")
        d.deploy(a, source(a, busybox_image, f"{a}.test", "v1", replicas=1, sidecar=False))
        results: list[subprocess.CompletedProcess] = []

        def one(version: str):
            results.append(d.deploy(a, source(a, busybox_image, f"{a}.test", version, replicas=1, sidecar=False),
                                    check=False))

        ts = [threading.Thread(target=one, args=(v,)) for v in ("v2", "v3")]
        for t in ts:
            t.start()
        for t in ts:
            t.join(300)
        codes = sorted(r.returncode for r in results)
        assert codes == [0, 0], "\n\n".join(f"exit {r.returncode}:\n{r.stderr[-3000:]}" for r in results)
        assert any("another deploy of" in r.stderr and "waiting for it" in r.stderr for r in results), \
            [r.stderr[-1500:] for r in results]
        assert not dk.docker("ps", "-aq", "--filter", f"name=luma-deploy-lock-{a}").strip()
        code, body = pk.get("127.0.0.1", d.port, f"{a}.test")
        assert code == 200 and body.startswith(f"{a}/web-v"), (code, body)


def test_the_owner_of_a_host_still_deploys_after_another_project_claimed_it(tmp_path, busybox_image, caddy_image):
    with deploys(tmp_path, caddy_image) as d:
        gmail, evil = dk.unique("gmail"), dk.unique("evil")
        host = f"mail.{gmail}.test"
        d.deploy(gmail, source(gmail, busybox_image, host, "v1", replicas=1, sidecar=False))
        # evil claims the host by hand-rolled compose (deploy would refuse it): it loses
        evil_proj = dk.write(tmp_path / evil / "compose.yaml",
                             source(evil, busybox_image, host, "v1", replicas=1, sidecar=False))
        rendered = dk.render(evil_proj, evil)
        d.projects.append(evil)
        dk.run(["docker", "compose", "-p", evil, "-f", "-", "up", "-d"], input=rendered, timeout=300)
        dk.docker("restart", "-t", "1", f"{gmail}-web-1")
        r = d.deploy(gmail, source(gmail, busybox_image, host, "v2", replicas=1, sidecar=False), check=False)
        assert r.returncode == 0, r.stderr[-2000:]
        code, body = pk.get("127.0.0.1", d.port, host)
        assert code == 200 and body.startswith(f"{gmail}/web-v2/"), (code, body)
        refused = d.deploy(evil, source(evil, busybox_image, host, "v2", replicas=1, sidecar=False), check=False)
        assert refused.returncode == 1 and f"already routed by project {gmail}" in refused.stderr


def test_the_https_redirect_keeps_the_published_port_and_routes_says_what_is_served(tmp_path, busybox_image,
                                                                                     caddy_image):
    with contextlib.ExitStack() as stack:
        proxy = stack.enter_context(pk.proxy(pk.SHARED, caddy_image, "--tls", "internal"))
        name = dk.unique("tlsp")
        host = f"{name}.test"
        stack.enter_context(pk.project(pk.SHARED, tmp_path, name, busybox_image, {"web": {"hosts": [host]}}))
        proxy.sync(check=True)
        https = proxy.published("443/tcp")
        assert https != 443
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request("GET", "/a?b=1", headers={"Host": host})
        r = conn.getresponse()
        assert r.status == 308 and r.getheader("Location") == f"https://{host}:{https}/a?b=1"
        conn.close()
        # routes: the labels' table, and where it differs, what Caddy serves
        text = pk.SHARED.cli("routes", "--name", proxy.name).stdout
        assert "no Docker health check, in pool" in text and "served now" not in text, text
        dk.docker("stop", "-t", "1", f"{name}-web-1")
        text = pk.SHARED.cli("routes", "--name", proxy.name).stdout
        assert "not running (exited)" in text, text
        j = proxy.routes()
        (route,) = [x for x in j["routes"] if x["project"] == name]
        assert route["served_upstreams"] == [f"tcp4/{name}-web-1.:3000"]

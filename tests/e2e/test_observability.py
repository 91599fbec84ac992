"""Issue 24 (one host): access logs, metrics and the status view, through the real proxy on the real
engine, with a real Prometheus (Debian's ``prometheus``) scraping the proxy.

Hostile cases: a project container trying to read the metrics (on its ingress network, where it
reaches the proxy); a Host header and a path with control characters, and a 10 kB path, that must
not break the access log's JSON lines.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

import dockerkit as dk
import proxykit as pk
from luma_compose import contract

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def site(tmp_path, busybox_image, caddy_image):
    """A proxy with metrics on a free loopback port and two projects (web on each), synced."""
    with contextlib.ExitStack() as stack:
        mport = free_port()
        proxy = stack.enter_context(pk.proxy(pk.SHARED, caddy_image, "--tls", "off", "--metrics",
                                             f"127.0.0.1:{mport}"))
        names = [dk.unique("obsa"), dk.unique("obsb")]
        projects = [stack.enter_context(pk.project(pk.SHARED, tmp_path, n, busybox_image,
                                                   {"web": {"hosts": [f"app.{n}.test"]}})) for n in names]
        proxy.sync(check=True)
        for n in names:
            assert pk.wait_for(lambda n=n: proxy.get(f"app.{n}.test")[0] == 200, timeout=60)
        yield proxy, projects, mport


def logs(proxy: pk.Proxy, *args: str, check: bool = True) -> list[dict]:
    out = pk.SHARED.cli("logs", "--name", proxy.name, "--format", "json", *args, check=check).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def raw_request(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(head)
        data = b""
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                data += chunk
        return data


def test_access_log_has_one_json_line_per_request_with_its_route(site):
    proxy, (a, b), _ = site
    ha, hb = f"app.{a.name}.test", f"app.{b.name}.test"
    for _ in range(3):
        assert proxy.get(ha)[0] == 200
    assert proxy.get(hb, "/nothing-here")[0] == 404
    conn = __import__("http.client").client.HTTPConnection("127.0.0.1", proxy.port, timeout=15)
    conn.request("GET", "/", headers={"Host": ha, "X-Request-Id": "forged"})
    resp = conn.getresponse()
    rid = resp.getheader("X-Request-Id")
    resp.read()
    conn.close()
    assert rid and rid != "forged"
    # the fixture's readiness GET (one at least) is logged too
    recs = pk.wait_for(lambda: (r := logs(proxy, "-p", a.name)) and len(r) >= 5 and r, timeout=30)
    assert {r["project"] for r in recs} == {a.name} and [r["request_id"] for r in recs[-4:]].count(rid) == 1
    r = recs[-1]
    assert (r["service"], r["host"], r["method"], r["path"], r["status"]) == ("web", ha, "GET", "/", 200)
    assert r["upstream"] == f"{a.name}-web-1:3000" and r["request_id"] == rid
    # the duration is a field of the line (a number), not a bound: how long it took is bench/observability.py's
    assert r["bytes"] > 0 and isinstance(r["duration"], (int, float)) and r["client"] and r["time"].endswith("Z")
    only_404 = logs(proxy, "--status", "4xx")
    assert [(x["project"], x["path"], x["status"]) for x in only_404] == [(b.name, "/nothing-here", 404)]
    assert logs(proxy, "-p", b.name, "--service", "nope") == []
    text = pk.SHARED.cli("logs", "--name", proxy.name, "-p", b.name).stdout
    assert f"{b.name}/web 404 GET {hb}/nothing-here" in text


def test_logs_follow_prints_new_requests_as_they_come(site):
    proxy, (a, _), _ = site
    cmd = [*dk.luma_compose_cmd(), "logs", "--name", proxy.name, "-p", a.name, "--since", "1s", "--follow",
           "--format", "json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    guard = threading.Timer(120, proc.kill)  # a readline that never returns fails the test, never hangs it
    guard.start()
    try:
        time.sleep(1)
        assert proxy.get(f"app.{a.name}.test", "/followed")[0] == 404
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(r["path"] == "/followed" for r in seen):
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(json.loads(line))
        assert any(r["path"] == "/followed" and r["project"] == a.name for r in seen), seen
        assert proc.poll() is None  # still following
    finally:
        guard.cancel()
        proc.terminate()
        proc.wait(timeout=30)


def test_hostile_hosts_and_paths_never_break_a_log_line(site):
    proxy, (a, _), _ = site
    ha = f"app.{a.name}.test"
    long_path = "/" + "x" * 10_240
    heads = [
        f"GET {long_path} HTTP/1.1\r\nHost: {ha}\r\nConnection: close\r\n\r\n".encode(),
        f"GET /a%00b%0d%0a%1b[31m\"q\\ HTTP/1.1\r\nHost: {ha}\r\nConnection: close\r\n\r\n".encode(),
        b"GET / HTTP/1.1\r\nHost: evil\x1b[31m\x01.test\r\nConnection: close\r\n\r\n",
        b"GET /\xff\xfe\x7f HTTP/1.1\r\nHost: " + b"h" * 10_240 + b".test\r\nConnection: close\r\n\r\n",
        ("GET / HTTP/1.1\r\nHost: " + "\u00e9\u2028x.test" + "\r\nConnection: close\r\n\r\n").encode(),
    ]
    for h in heads:
        raw_request(proxy.port, h)
    assert proxy.get(ha, "/after")[0] == 404  # busybox httpd has no such file: the proxy still answers
    # every line of the proxy's stdout is one JSON object (the raw log, not only what `logs` parses)
    raw = pk.wait_for(lambda: (o := pk.SHARED.docker("logs", proxy.name, check=False)) and "/after" in o and o,
                      timeout=30)
    for line in raw.splitlines():
        assert isinstance(json.loads(line), dict), line
    recs = logs(proxy, "-p", a.name)
    assert any(r["path"] == long_path for r in recs)
    assert recs[-1]["path"] == "/after"
    text = pk.SHARED.cli("logs", "--name", proxy.name).stdout
    assert "\x1b" not in text and "\x00" not in text


def test_metrics_are_served_to_the_host_never_to_a_project_container(site, busybox_image):
    proxy, (a, _), mport = site
    assert proxy.engine.inspect(proxy.name)["NetworkSettings"]["Ports"]["9180/tcp"][0]["HostIp"] == "127.0.0.1"
    body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/luma/metrics", timeout=15).read().decode()
    assert f'luma_route_info{{host="app.{a.name}.test",project="{a.name}",service="web"}} 1' in body
    caddy = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=15).read().decode()
    assert "caddy_http_requests_total" in caddy and "caddy_config_last_reload_successful 1" in caddy
    # upstream health joins to its route: Caddy's upstream label is the dial address luma_upstream_info names
    # (Caddy updates that gauge every 10 s)
    dial = f"tcp4/{a.container('web')}.:3000"
    healthy = f'caddy_reverse_proxy_upstreams_healthy{{upstream="{dial}"}} 1'
    assert pk.wait_for(lambda: healthy in urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics",
                                                                 timeout=15).read().decode(), timeout=60, every=1)
    assert f'luma_upstream_info{{upstream="{dial}",project="{a.name}",service="web"}} 1' in body
    # a project container reaches the proxy on its ingress network: every port and path is refused
    ip = proxy.engine.inspect(proxy.name)["NetworkSettings"]["Networks"][contract.ingress_network(a.name)]["IPAddress"]
    for path in ("/metrics", "/luma/metrics", "/"):
        p = dk.exec_sh(a.container("web"), f"wget -q -O - http://{ip}:9180{path}; echo rc=$?")
        assert "caddy_" not in p.stdout and "luma_route_info" not in p.stdout and "rc=0" not in p.stdout, p.stdout
        assert "403" in p.stderr, p.stderr  # refused by the listener, not a failing client
    # nor through the host's address: the published port is on loopback only
    gw = proxy.engine.inspect(a.container("web"))["NetworkSettings"]["Networks"][
        contract.ingress_network(a.name)]["Gateway"]
    # (busybox's `wget -T` segfaults here: `timeout` bounds it instead, and a crash is no refusal)
    p = dk.exec_sh(a.container("web"), f"timeout 5 wget -q -O - http://{gw}:{mport}/metrics; echo rc=$?")
    rc = p.stdout.rsplit("rc=", 1)[-1].strip()
    assert "caddy_" not in p.stdout and rc not in ("0", "139"), (p.stdout, p.stderr)


def test_prometheus_counts_requests_per_project(site, tmp_path):
    proxy, (a, b), mport = site
    prom = shutil.which("prometheus")
    assert prom, "Debian's prometheus is missing: scripts/test installs it"
    for _ in range(7):
        assert proxy.get(f"app.{a.name}.test")[0] == 200
    for _ in range(3):
        assert proxy.get(f"app.{b.name}.test", "/missing")[0] == 404
    pport = free_port()
    target = f"127.0.0.1:{mport}"
    cfg = {"global": {"scrape_interval": "1s"}, "scrape_configs": [{"job_name": "luma", "static_configs": [
        {"targets": [target], "labels": {"__metrics_path__": "/metrics"}},
        {"targets": [target], "labels": {"__metrics_path__": "/luma/metrics"}}]}]}
    conf = dk.write(tmp_path / "prometheus.yml", json.dumps(cfg))
    proc = subprocess.Popen([prom, f"--config.file={conf}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{pport}"],
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prom.log", "w"))
    query = ('sum by (project, code) (caddy_http_request_duration_seconds_count{server="luma"} '
             '* on (host) group_left (project, service) luma_route_info)')

    def result():
        url = f"http://127.0.0.1:{pport}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        try:
            data = json.loads(urllib.request.urlopen(url, timeout=5).read())
        except OSError:
            return None
        got = {(r["metric"]["project"], r["metric"]["code"]): float(r["value"][1]) for r in data["data"]["result"]}
        return got if (a.name, "200") in got and (b.name, "404") in got else None

    try:
        got = pk.wait_for(result, timeout=90, every=1)
        assert got, (tmp_path / "prom.log").read_text()[-2000:]
        # the fixture's readiness GETs of each project count too: at least one 200 each, before ours
        assert got[(b.name, "404")] == 3
        assert got[(a.name, "200")] >= 8 and (a.name, "404") not in got
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_status_shows_every_project_and_exits_on_attention(site):
    proxy, (a, b), _ = site
    assert proxy.get(f"app.{a.name}.test")[0] == 200
    r = pk.SHARED.cli("status", "--name", proxy.name, "--format", "json", check=False)
    view = json.loads(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    projects = {p["project"]: p for p in view["projects"]}
    assert set(projects) == {a.name, b.name}
    sa = projects[a.name]["services"][0]
    assert (sa["service"], sa["hosts"], sa["ready"], sa["total"]) == ("web", [f"app.{a.name}.test"], 1, 1)
    assert sa["requests"] >= 1 and sa["errors"] == 0 and projects[a.name]["last_deploy"]
    text = pk.SHARED.cli("status", "--name", proxy.name).stdout
    assert a.name in text and "nothing needs attention" in text
    b.compose("stop", "--timeout", "1")
    r = pk.SHARED.cli("status", "--name", proxy.name, check=False)
    assert r.returncode == 1 and f"{b.name}/web" in r.stdout, r.stdout
    pk.SHARED.docker("stop", proxy.name)
    assert pk.SHARED.cli("status", "--name", proxy.name, check=False).returncode == 3

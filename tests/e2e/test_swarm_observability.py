"""Issue 24 on a real Docker Swarm (tests/support/cluster.py): every edge writes the access log (one
JSON line per request, the same keys as one host's proxy plus the node), `logs --swarm` reads every
edge's on a manager. Run under the private-engine lock:

    flock /tmp/luma-private-engine.lock env LUMA_NO_SETUP=1 bash scripts/test tests/e2e/test_swarm_observability.py

The client runs in the cluster's client namespace (the "internet") and reaches each node's edge on the
node's own address (published in host mode): the edge logs the client's own address. The module
shares the cluster other swarm modules use: unique project names, everything it changes put back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dockerkit  # noqa: E402
from support import cluster as clusterkit  # noqa: E402
from test_swarm import PORT, luma  # noqa: E402

pytestmark = pytest.mark.e2e

PROXY = "luma-proxy"

APP = """\
services:
  web:
    image: {image}
    environment: {{PROJECT: {project}, SERVICE: web}}
    healthcheck: &health
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/up"]
      interval: 1s
      timeout: 1s
      retries: 2
    x-luma:
      hosts: [web.{project}.test]
      port: 3000
    deploy:
      replicas: 2
      placement:
        preferences: [{{spread: node.id}}]
  down:
    image: {image}
    environment: {{PROJECT: {project}, SERVICE: down}}
    healthcheck: *health
    x-luma:
      hosts: [down.{project}.test]
      port: 3000
  echo:
    image: {image}
    healthcheck: *health
    # a CGI that answers the request id it got, and a Luma-Upstream header of its own (forged)
    command:
      - sh
      - -c
      - |
        mkdir -p /www/cgi-bin && echo ok > /www/up
        cat > /www/cgi-bin/rid <<'END'
        #!/bin/sh
        printf 'Content-Type: text/plain\\r\\nLuma-Upstream: forged:1\\r\\n\\r\\n%s\\n' "$$HTTP_X_REQUEST_ID"
        END
        chmod +x /www/cgi-bin/rid
        exec httpd -f -p 3000 -h /www
    x-luma:
      hosts: [echo.{project}.test]
      # a path route: its edge handler is laid out apart from a plain route's, and must hide the header too
      paths: [/cgi-bin]
      port: 3000
"""


@pytest.fixture(scope="module")
def swarm(busybox_image: str, caddy_image: str):
    """A cluster of this module's own, not the session's: its log assertions read every edge task's log since the
    service began, so they must not follow modules that recreate or reconfigure the edges."""
    from test_swarm import proxied_cluster

    with proxied_cluster(busybox_image, caddy_image) as c:
        yield c


@pytest.fixture(scope="module")
def app(swarm, busybox_image, tmp_path_factory) -> Iterator[str]:
    """A project with `web` (2 tasks, one per node) and `down` (scaled to 0: its hosts answer 5xx)."""
    c = swarm
    name = dockerkit.unique("sobs")
    f = dockerkit.write(tmp_path_factory.mktemp(name) / "compose.yaml", APP.format(image=busybox_image, project=name))
    try:
        luma(c, "deploy", "--swarm", "-f", str(f), "-p", name, "--resolve-image", "never")
        c.docker("service", "scale", "--detach", f"{name}_down=0")
        for node in c.nodes:
            assert wait_for(c, node, f"web.{name}.test", lambda s: s == 200)[0] == 200
            assert wait_for(c, node, f"down.{name}.test", lambda s: s >= 500)[0] >= 500
        yield name
    finally:
        luma(c, "down", "--swarm", "-p", name, check=False)


def curl(c: clusterkit.Cluster, node: clusterkit.Node, host: str, path: str = "/") -> tuple[int, dict[str, str]]:
    """One GET from the client namespace through ``node``'s edge: (status, response headers, lowercased)."""
    p = c.in_client(["curl", "-sS", "-m", "20", "-o", "/dev/null", "-D", "-", "-H", f"Host: {host}",
                     f"http://{node.ip}:{PORT}{path}"], timeout=60)
    lines = p.stdout.replace("\r\n", "\n").split("\n\n")[0].splitlines()
    if not lines:
        return 0, {}
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), headers


def wait_for(c, node, host, ok, path="/", timeout: float = 90) -> tuple[int, dict[str, str]]:
    deadline = time.monotonic() + timeout
    got = curl(c, node, host, path)
    while not ok(got[0]) and time.monotonic() < deadline:
        time.sleep(0.5)
        got = curl(c, node, host, path)
    return got


def logs(c: clusterkit.Cluster, *args: str) -> list[dict]:
    out = luma(c, "logs", "--swarm", "--format", "json", *args).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def logged(c: clusterkit.Cluster, want, *args: str, timeout: float = 60) -> list[dict]:
    """`logs --swarm ARGS` once ``want(records)`` holds (docker service logs reads each node's log)."""
    deadline = time.monotonic() + timeout
    recs = logs(c, *args)
    while not want(recs) and time.monotonic() < deadline:
        time.sleep(1)
        recs = logs(c, *args)
    return recs


def task_addresses(c: clusterkit.Cluster, service: str, network: str) -> set[str]:
    """The addresses of ``service``'s running tasks on ``network``."""
    out = set()
    for t in c.service_tasks(service):
        for att in json.loads(c.docker("inspect", t["ID"]))[0].get("NetworksAttachments") or []:
            if att["Network"]["Spec"]["Name"] == network:
                out |= {a.split("/")[0] for a in att.get("Addresses") or []}
    return out


def test_each_edge_logs_every_request_with_its_route_upstream_client_and_node(swarm, app):
    c, name = swarm, app
    host = f"web.{name}.test"
    probes = {}
    for node in c.nodes:
        path = f"/?probe={uuid.uuid4().hex}"
        status, headers = curl(c, node, host, path)
        assert status == 200
        assert "luma-upstream" not in headers and headers.get("x-request-id"), headers  # the gateway's header stays in
        probes[path] = (node, headers["x-request-id"])
    recs = logged(c, lambda rs: {r["path"] for r in rs} >= set(probes), "-p", name)
    addresses = task_addresses(c, f"{name}_web", f"{name}_luma")
    assert len(addresses) == 2, addresses
    for path, (node, rid) in probes.items():
        mine = [r for r in recs if r["path"] == path]
        assert len(mine) == 1, mine
        r = mine[0]
        assert (r["project"], r["service"], r["host"], r["method"], r["status"]) == (name, "web", host, "GET", 200)
        assert r["client"] == c.client_ip and r["request_id"] == rid
        # the edge that answered, and the task its project's gateway dialled
        assert r["node_id"] and node.node_id.startswith(r["node_id"]) and r["node"]
        assert r["upstream"].rpartition(":")[0] in addresses and r["upstream"].endswith(":3000"), r
        assert r["bytes"] > 0 and isinstance(r["duration"], (int, float)) and r["time"].endswith("Z")
    text = luma(c, "logs", "--swarm", "-p", name).stdout
    assert all(f"{name}/web 200 GET {host}{path}" in text for path in probes), text


def test_the_app_gets_the_request_id_and_cannot_forge_the_logged_upstream(swarm, app):
    c, name = swarm, app
    host = f"echo.{name}.test"
    addresses = task_addresses(c, f"{name}_echo", f"{name}_luma")
    for node in c.nodes:
        p = c.in_client(["curl", "-sS", "-m", "20", "-D", "-", "-H", f"Host: {host}", "-H", "X-Request-Id: forged",
                         f"http://{node.ip}:{PORT}/cgi-bin/rid"], timeout=60)
        head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in head.splitlines()[1:])}
        rid = headers.get("x-request-id")
        assert head.split()[1] == "200" and rid and rid != "forged", p.stdout
        assert body.strip() == rid  # what the app got is what the client and the log get
        assert "luma-upstream" not in headers  # neither the gateway's nor the app's reaches the client
        recs = logged(c, lambda rs: any(r["request_id"] == rid for r in rs), "-p", name, "--service", "echo")
        [r] = [r for r in recs if r["request_id"] == rid]
        assert r["upstream"].rpartition(":")[0] in addresses, (r, addresses)  # the gateway's, not the app's


def test_logs_swarm_filters_by_status_and_service(swarm, app):
    c, name = swarm, app
    for node in c.nodes:
        assert curl(c, node, f"down.{name}.test", "/gone")[0] >= 500
    errors = logged(c, lambda rs: sum(r["path"] == "/gone" for r in rs) >= 2, "-p", name, "--status", "5xx")
    assert errors and all(r["status"] >= 500 and r["service"] == "down" and r["project"] == name for r in errors)
    assert {r["node_id"] for r in errors if r["path"] == "/gone"} == {n.node_id[:len(errors[0]["node_id"])]
                                                                      for n in c.nodes}
    assert logs(c, "-p", name, "--service", "nope") == []
    assert all(r["service"] == "web" for r in logs(c, "-p", name, "--service", "web"))


def test_logs_swarm_follow_prints_each_edges_new_requests(swarm, app):
    c, name = swarm, app
    cmd = [*dockerkit.luma_compose_cmd(), "logs", "--swarm", "-p", name, "--since", "1s", "--follow", "--format", "json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, **c.manager.env})
    guard = threading.Timer(120, proc.kill)  # a readline that never returns fails the test, never hangs it
    guard.start()
    try:
        time.sleep(2)
        paths = {}
        for node in c.nodes:
            path = f"/?followed={uuid.uuid4().hex}"
            assert curl(c, node, f"web.{name}.test", path)[0] == 200
            paths[path] = node.node_id
        seen: dict[str, str] = {}
        while not set(paths) <= set(seen):
            line = proc.stdout.readline()
            if not line:
                break
            r = json.loads(line)
            seen[r["path"]] = r["node_id"]
        assert {p: seen.get(p) for p in paths} == paths
        assert proc.poll() is None  # still following
    finally:
        guard.cancel()
        proc.terminate()
        proc.wait(timeout=30)


def test_hostile_hosts_and_paths_keep_every_edge_line_json(swarm, app):
    c, name = swarm, app
    host = f"web.{name}.test"
    long_path = "/" + "x" * 10_240
    heads = [
        f"GET {long_path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode(),
        f"GET /a%00b%0d%0a%1b[31m\"q\\ HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode(),
        b"GET / HTTP/1.1\r\nHost: evil\x1b[31m\x01.test\r\nConnection: close\r\n\r\n",
        b"GET /\xff\xfe\x7f HTTP/1.1\r\nHost: " + b"h" * 10_240 + b".test\r\nConnection: close\r\n\r\n",
        ("GET / HTTP/1.1\r\nHost: " + "\u00e9\u2028x.test" + "\r\nConnection: close\r\n\r\n").encode(),
    ]
    send = ("import socket, sys\n"
            "for h in sys.stdin.read().split():\n"
            "    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=15)\n"
            "    s.sendall(bytes.fromhex(h))\n"
            "    try:\n"
            "        while s.recv(65536): pass\n"
            "    except OSError: pass\n"
            "    s.close()\n")
    for node in c.nodes:
        p = c.in_client([sys.executable, "-c", send, node.ip, str(PORT)], input=" ".join(h.hex() for h in heads))
        assert p.returncode == 0, p.stderr
        assert curl(c, node, host, "/after-hostile")[0] == 404  # busybox has no such file: the edge still answers
    recs = logged(c, lambda rs: sum(r["path"] == "/after-hostile" for r in rs) >= 2, "-p", name)
    assert sum(r["path"] == long_path for r in recs) == 2
    # every line every edge wrote to stdout is one JSON object (the raw log, not only what `logs` parses)
    raw = c.docker("service", "logs", "--raw", PROXY)
    assert raw.strip()
    for line in raw.splitlines():
        assert isinstance(json.loads(line), dict), line[:300]
    text = luma(c, "logs", "--swarm").stdout
    assert "\x1b" not in text and "\x00" not in text


def test_the_edges_log_is_rotated(swarm):
    driver = json.loads(swarm.docker("service", "inspect", PROXY, "--format", "{{json .Spec.TaskTemplate.LogDriver}}"))
    assert driver == {"Name": "json-file", "Options": {"max-file": "5", "max-size": "20m"}}


def test_access_log_off_writes_no_line_and_on_again_does(swarm, app, caddy_image):
    c, name = swarm, app
    host = f"web.{name}.test"
    up = ["proxy", "up", "--swarm", "--image", caddy_image, "--http-port", str(PORT), "--access-log"]
    try:
        luma(c, *up, "off")
        off = f"/?off={uuid.uuid4().hex}"
        for node in c.nodes:
            assert curl(c, node, host, off)[0] == 200
        time.sleep(3)  # what an edge writes reaches `docker service logs` within this (the on case waits for it)
        p = luma(c, "logs", "--swarm", "-p", name, "--format", "json")
        assert off not in p.stdout and "writes no access log" in p.stderr
    finally:
        luma(c, *up, "on")
    on = f"/?on={uuid.uuid4().hex}"
    for node in c.nodes:
        assert curl(c, node, host, on)[0] == 200
    assert len([r for r in logged(c, lambda rs: sum(r["path"] == on for r in rs) >= 2, "-p", name)
                if r["path"] == on]) == 2


def status(c: clusterkit.Cluster) -> tuple[int, dict]:
    p = luma(c, "status", "--swarm", "--format", "json", "--window", "1h", check=False)
    assert p.returncode in (0, 1), p.stderr
    return p.returncode, json.loads(p.stdout)


def counts(view: dict, project: str) -> dict[str, dict]:
    return {s["service"]: s for p in view["projects"] if p["project"] == project for s in p["services"]}


def test_status_swarm_counts_each_services_requests_and_5xx_and_its_tasks(swarm, app):
    c, name = swarm, app
    _, before = status(c)
    sent = 0
    for node in c.nodes:
        for i in range(3):
            assert curl(c, node, f"web.{name}.test", f"/?count={i}")[0] == 200
            sent += 1
        assert curl(c, node, f"down.{name}.test", "/count")[0] >= 500
    marker = f"/?done={uuid.uuid4().hex}"
    assert curl(c, c.nodes[0], f"web.{name}.test", marker)[0] == 200
    logged(c, lambda rs: any(r["path"] == marker for r in rs), "-p", name)
    code, after = status(c)
    b, a = counts(before, name), counts(after, name)
    assert a["web"]["requests"] - b["web"]["requests"] == sent + 1 and a["web"]["errors"] == b["web"]["errors"] == 0
    assert a["down"]["errors"] - b["down"]["errors"] == len(c.nodes) == a["down"]["requests"] - b["down"]["requests"]
    assert (a["web"]["ready"], a["web"]["total"], a["web"]["health"]) == (2, 2, "healthy")
    assert (a["down"]["ready"], a["down"]["total"], a["down"]["health"]) == (0, 0, "down")
    assert a["web"]["hosts"] == [f"web.{name}.test"]
    project = next(p for p in after["projects"] if p["project"] == name)
    assert project["last_deploy"] and project["last_deploy"].endswith("Z")
    assert code == 1 and any(f"{name}/down" in x for x in project["attention"])
    assert after["proxy"]["name"] == PROXY and after["proxy"]["in_sync"] is True and after["proxy"]["access_log"]
    text = luma(c, "status", "--swarm", check=False).stdout
    assert f"{name} web web.{name}.test 2/2 healthy" in " ".join(text.split()), text

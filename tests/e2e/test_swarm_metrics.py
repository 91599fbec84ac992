"""Issue 24 item 2 on a real Docker Swarm (tests/support/cluster.py): every edge serves the metrics
listener, a real Prometheus (Debian's ``prometheus``, in the cluster's client namespace: the user's
monitoring host) scrapes both nodes, and a project's task reads nothing. Run under the private-engine lock:

    flock /tmp/luma-private-engine.lock env LUMA_NO_SETUP=1 bash scripts/test tests/e2e/test_swarm_metrics.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dockerkit  # noqa: E402
from support import cluster as clusterkit  # noqa: E402
from test_swarm import PORT, luma  # noqa: E402

pytestmark = pytest.mark.e2e

MPORT = 9180

APP = """\
services:
  web:
    image: {image}
    environment: {{PROJECT: {project}, SERVICE: web}}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/up"]
      interval: 1s
      timeout: 1s
      retries: 2
    deploy:
      replicas: 2
      placement:
        preferences: [{{spread: node.id}}]
    x-luma:
      hosts: [web.{project}.test]
      port: 3000
"""



@pytest.fixture(scope="module")
def swarm(busybox_image: str, caddy_image: str):
    """A cluster of this module's own, not the session's: it republishes the edges' ports (Swarm recreates
    every edge), which the modules after it must not inherit."""
    from test_swarm import proxied_cluster

    with proxied_cluster(busybox_image, caddy_image) as c:
        yield c


def proxy_up(c: clusterkit.Cluster, caddy_image: str, *args: str, check: bool = True):
    """``proxy up --swarm`` with the standard args of proxied_cluster, plus ``args``."""
    return luma(c, "proxy", "up", "--swarm", "--image", caddy_image, "--http-port", str(PORT), *args, check=check)


def client_get(c: clusterkit.Cluster, url: str, *args: str) -> tuple[int, str]:
    """(status, body) of a GET from the client namespace; status 0 when nothing answered."""
    p = c.in_client(["curl", "-sS", "-m", "10", "-o", "-", "-w", "\n%{http_code}", *args, url], timeout=30)
    body, _, code = p.stdout.rpartition("\n")
    return int(code or 0), body


def wait_until(fn, timeout: float = 120, every: float = 0.5):
    deadline = time.monotonic() + timeout
    got = fn()
    while not got and time.monotonic() < deadline:
        time.sleep(every)
        got = fn()
    return got


def deploy(c: clusterkit.Cluster, tmp: Path, name: str, image: str) -> None:
    f = dockerkit.write(tmp / name / "compose.yaml", APP.format(image=image, project=name))
    luma(c, "deploy", "--swarm", "-f", str(f), "-p", name, "--resolve-image", "never")


def task_containers(c: clusterkit.Cluster, service: str) -> list[tuple[clusterkit.Node, str]]:
    """(node, container id) of each running task of ``service``."""
    return [(n, cid) for n in c.nodes for cid in n.docker(
        "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}").split()]


def test_an_allow_list_a_task_could_pass_is_refused(swarm, caddy_image):
    c = swarm
    for allow, says in (("10.210.0.0/16", "overlay network"), (f"{c.subnet}.0/24", "address"),
                        ("0.0.0.0/0", "docker_gwbridge")):
        r = proxy_up(c, caddy_image, "--metrics", str(MPORT), "--metrics-allow", allow, check=False)
        assert r.returncode == 2 and says in r.stderr and "--metrics-allow" in r.stderr, (allow, r.stderr)
    r = proxy_up(c, caddy_image, "--metrics", str(MPORT), check=False)
    assert r.returncode == 2 and "needs --metrics-allow" in r.stderr, r.stderr
    # nothing was changed: no node publishes the metrics port
    for node in c.nodes:
        assert client_get(c, f"http://{node.ip}:{MPORT}/metrics")[0] == 0


def test_prometheus_scrapes_every_edge_and_no_task_reads_the_metrics(swarm, tmp_path, busybox_image, caddy_image):
    c = swarm
    prom = shutil.which("prometheus")
    assert prom, "Debian's prometheus is missing: scripts/test installs it"
    a, b = dockerkit.unique("smxa"), dockerkit.unique("smxb")
    proc = None
    try:
        deploy(c, tmp_path, a, busybox_image)
        deploy(c, tmp_path, b, busybox_image)
        proxy_up(c, caddy_image, "--metrics", str(MPORT), "--metrics-allow", f"{c.client_ip}/32")
        n1, n2 = c.nodes
        for node in c.nodes:
            for p in (a, b):
                assert wait_until(lambda: client_get(c, f"http://{node.ip}:{PORT}/", "-H",
                                                     f"Host: web.{p}.test")[1].startswith(f"{p}/web/"))
            # each edge serves its metrics to the allowed address: Caddy's, and the route table's
            assert wait_until(lambda: f'project="{b}"' in client_get(c, f"http://{node.ip}:{MPORT}/luma/metrics")[1])
            status, body = client_get(c, f"http://{node.ip}:{MPORT}/luma/metrics")
            assert status == 200
            assert f'luma_route_info{{host="web.{a}.test",project="{a}",service="web"}} 1' in body
            assert f'luma_upstream_info{{upstream="luma-proxy-gw-{a}:8080",project="{a}",service="web"}} 1' in body
            status, body = client_get(c, f"http://{node.ip}:{MPORT}/metrics")
            assert status == 200 and "caddy_config_last_reload_successful 1" in body

        # known traffic through both nodes (HEAD: the readiness GETs above are not counted)
        sent = {(a, n1.ip): 5, (a, n2.ip): 3, (b, n1.ip): 2, (b, n2.ip): 4}
        for (p, ip), n in sent.items():
            for _ in range(n):
                assert client_get(c, f"http://{ip}:{PORT}/", "-I", "-H", f"Host: web.{p}.test")[0] == 200

        pport = 19090
        targets = [f"{n.ip}:{MPORT}" for n in c.nodes]
        cfg = {"global": {"scrape_interval": "1s"}, "scrape_configs": [{"job_name": "luma-proxy", "static_configs": [
            {"targets": targets, "labels": {"__metrics_path__": "/metrics"}},
            {"targets": targets, "labels": {"__metrics_path__": "/luma/metrics"}}]}]}
        conf = dockerkit.write(tmp_path / "prometheus.yml", json.dumps(cfg))
        proc = c.client_popen([prom, f"--config.file={conf}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                               f"--web.listen-address=127.0.0.1:{pport}"],
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prom.log", "w"))
        # the single host's query, joined per instance (each edge's own table) and summed over the edges
        query = ('sum by (project, instance) (caddy_http_request_duration_seconds_count{server="luma",method="HEAD"} '
                 '* on (instance, host) group_left (project, service) luma_route_info)')

        def result():
            url = f"http://127.0.0.1:{pport}/api/v1/query?" + urllib.parse.urlencode({"query": query})
            status, body = client_get(c, url)
            if status != 200:
                return None
            got = {(r["metric"]["project"], r["metric"]["instance"].rpartition(":")[0]): float(r["value"][1])
                   for r in json.loads(body)["data"]["result"]}
            return got if len(got) == 4 else None

        got = wait_until(result, timeout=90, every=1)
        assert got == {k: float(v) for k, v in sent.items()}, (got, (tmp_path / "prom.log").read_text()[-2000:])

        # a project's task: its own node's port, the other node's (its connection leaves masqueraded as its
        # node's address) and the edge's addresses (its overlay: not on the task's networks): no metrics
        # anywhere, 403 naming the refused address where anything answers
        edge_ips = []
        for node, cid in task_containers(c, "luma-proxy"):
            nets = json.loads(node.docker("inspect", cid))[0]["NetworkSettings"]["Networks"]
            assert nets["luma-proxy_edge"]["IPAddress"]
            edge_ips += [v["IPAddress"] for v in nets.values() if v.get("IPAddress")]
        tasks = task_containers(c, f"{a}_web")
        assert {n.ip for n, _ in tasks} == {n1.ip, n2.ip}, tasks
        for node, cid in tasks:
            for ip in [n1.ip, n2.ip, *edge_ips]:
                for path in ("/metrics", "/luma/metrics"):
                    # a raw request (busybox nc): the 403's body names the address the edge saw. (Not wget -T:
                    # Debian's busybox-static wget segfaults with it, which would pass as "no metrics".)
                    p = subprocess.run(["docker", "-H", node.host, "exec", cid, "sh", "-c",
                                        f"printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | timeout 8 nc {ip} {MPORT}; "
                                        "echo rc=$?"], capture_output=True, text=True, timeout=60)
                    out = p.stdout + p.stderr
                    print(f"task on {node.ip} -> {ip}{path}: {' '.join(out.split())[:200]}")
                    assert "caddy_" not in out and "luma_route_info" not in out and " 200 " not in out, (ip, out)
                    assert "rc=" in p.stdout and "Segmentation" not in out, out  # nc ran
                    if ip in (n1.ip, n2.ip):  # the node's port answers, and refuses the task's address
                        assert " 403 " in out and "metrics are not served to" in out, (ip, out)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        luma(c, "down", "--swarm", "-p", a, check=False)
        luma(c, "down", "--swarm", "-p", b, check=False)
        # as proxied_cluster left it: no metrics (a left-out --metrics keeps the running proxy's)
        proxy_up(c, caddy_image, "--metrics", "off", check=False)
    for node in c.nodes:
        assert client_get(c, f"http://{node.ip}:{MPORT}/metrics")[0] == 0

"""The same compose file and x-luma on a real Docker Swarm (tests/support/cluster.py): 2 nodes,
a 3rd joining and leaving in one test.

Both nodes are private dockerds in their own network namespaces; the machine's engine is never a
swarm member. Clients (curl, hey) run in a third namespace, the "internet", and reach the proxy on
each node's own address (published with mode: host). The kernel here has no IPVS, so routed
services use endpoint_mode: dnsrr (render's default for them on a swarm).
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dockerkit  # noqa: E402
from support import cluster as clusterkit  # noqa: E402

PORT = 8080

APP = """\
services:
  web:
    image: {image}
    environment:
      PROJECT: {project}
      SERVICE: web
      VERSION: "{version}"
    command: {command}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/up"]
      interval: 1s
      timeout: 1s
      retries: 2
    x-luma:
      hosts: [{host}]
      port: 3000
    deploy:
      replicas: 2
      placement:
        preferences: [{{spread: node.id}}]
  caller:
    image: {image}
    environment:
      PROJECT: {project}
      SERVICE: caller
"""

GOOD = '["/usr/local/bin/serve"]'
#: Serves an empty directory: / and /up answer 404, so its health check never passes.
BROKEN = """["sh", "-c", "mkdir -p /empty && exec httpd -f -p 3000 -h /empty"]"""


def luma(c: clusterkit.Cluster, *args: str, input: str | None = None, check: bool = True,
         timeout: float = 400) -> subprocess.CompletedProcess[str]:
    """``luma-compose ARGS`` against the cluster's manager."""
    return dockerkit.run([*dockerkit.luma_compose_cmd(), *args], check=check,
                         input=input, timeout=timeout, env=c.manager.env)


@contextlib.contextmanager
def proxied_cluster(busybox_image: str, caddy_image: str) -> Iterator[clusterkit.Cluster]:
    """A private 2-node swarm with the test images and the swarm proxy up on PORT (every swarm e2e module's)."""
    why = clusterkit.preflight()
    if why:
        pytest.fail(why, pytrace=False)
    with clusterkit.cluster(2, images=[busybox_image, caddy_image]) as c:
        luma(c, "proxy", "up", "--swarm", "--image", caddy_image, "--http-port", str(PORT))
        yield c



@contextlib.contextmanager
def project(c: clusterkit.Cluster, tmp: Path, name: str, host: str, image: str, version: str = "1",
            command: str = GOOD) -> Iterator[Path]:
    f = dockerkit.write(tmp / name / "compose.yaml", APP.format(image=image, project=name, host=host,
                                                               version=version, command=command))
    try:
        luma(c, "deploy", "--swarm", "-f", str(f), "-p", name, "--resolve-image", "never")
        yield f
    finally:
        luma(c, "down", "--swarm", "-p", name, check=False)


def get(c: clusterkit.Cluster, node: clusterkit.Node, host: str, n: int = 1) -> list[str]:
    """n GETs through the proxy on ``node`` from the client namespace: body, or the status code."""
    script = (f"for i in $(seq {n}); do (curl -s -m 5 -w '|%{{http_code}}' -H 'Host: {host}' "
              f"http://{node.ip}:{PORT}/ || echo '|ERR') | tr -d '\\n'; echo; done")
    out = c.in_client(["sh", "-c", script], timeout=60 + n).stdout
    res = []
    for line in out.splitlines():
        body, _, code = line.rpartition("|")
        res.append(body.strip() if code == "200" else code)
    return res


def wait_served(c: clusterkit.Cluster, node: clusterkit.Node, host: str, prefix: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    got: list[str] = []
    while time.monotonic() < deadline:
        got = get(c, node, host, 4)
        if all(g.startswith(prefix) for g in got):
            return
        time.sleep(0.5)
    raise AssertionError(f"{host} via {node.ip} never served {prefix}: {got}")


def task_container(c: clusterkit.Cluster, service: str) -> tuple[clusterkit.Node, str]:
    """(node, container id) of one running task of ``service``."""
    for _ in range(60):
        for t in c.service_tasks(service):
            tid = t["ID"]
            info = dockerkit.json.loads(c.docker("inspect", tid))[0]
            cid = (info["Status"].get("ContainerStatus") or {}).get("ContainerID")
            if info["Status"]["State"] == "running" and cid:
                return c.node_by_id(info["NodeID"]), cid
        time.sleep(0.5)
    raise AssertionError(f"no running task of {service}")


def nodes_of(c: clusterkit.Cluster, service: str) -> set[str]:
    return {dockerkit.json.loads(c.docker("inspect", t["ID"]))[0]["NodeID"] for t in c.service_tasks(service)}


def hey(c: clusterkit.Cluster, node: clusterkit.Node, host: str, seconds: int) -> subprocess.Popen:
    return c.client_popen(["hey", "-z", f"{seconds}s", "-c", "8", "-host", host, f"http://{node.ip}:{PORT}/"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def hey_result(p: subprocess.Popen) -> tuple[Counter, int, str]:
    out, _ = p.communicate(timeout=300)
    codes = Counter({int(m.group(1)): int(m.group(2)) for m in re.finditer(r"\[(\d{3})\]\s+(\d+) responses", out)})
    tail = out.split("Error distribution:", 1)[1] if "Error distribution:" in out else ""
    errors = sum(int(m.group(1)) for m in re.finditer(r"^\s+\[(\d+)\]", tail, re.M))
    return codes, errors, out


# --------------------------------------------------------------------------- tests


def test_stack_file_is_accepted_by_docker_stack(tmp_path: Path, busybox_image: str) -> None:
    f = dockerkit.write(tmp_path / "compose.yaml", "name: pinned\n" + APP.format(
        image=busybox_image, project="p", host="p.test", version="1", command=GOOD))
    out = dockerkit.run([*dockerkit.luma_compose_cmd(), "render", "--swarm", "-f", str(f)]).stdout
    assert not re.search(r"^name:", out, re.M)
    cfg = dockerkit.run(["docker", "stack", "config", "-c", "-"], input=out).stdout
    assert "driver: overlay" in cfg and "attachable: true" in cfg and "endpoint_mode: dnsrr" in cfg
    assert "luma.target: pinned-web:3000" in cfg and "order: start-first" in cfg


def test_check_warns_about_keys_swarm_ignores_and_rejects(tmp_path: Path) -> None:
    f = dockerkit.write(tmp_path / "compose.yaml", """\
services:
  web:
    image: x
    build: .
    container_name: web1
    x-luma: {hosts: [a.test], port: 3000}
  db:
    image: y
    depends_on:
      web: {condition: service_healthy}
""")
    p = dockerkit.run([*dockerkit.luma_compose_cmd(), "check", "--swarm", "-f", str(f)], check=False)
    assert p.returncode == 1
    assert "`build` is ignored by docker stack deploy" in p.stderr
    assert "`container_name` is ignored" in p.stderr
    assert "rejected by docker stack deploy" in p.stderr


def test_two_projects_routed_by_host_tasks_on_both_nodes(swarm, tmp_path, busybox_image, unique) -> None:
    c = swarm
    a, z = unique("alpha"), unique("zeta")
    with project(c, tmp_path, a, f"{a}.test", busybox_image), project(c, tmp_path, z, f"{z}.test", busybox_image):
        assert nodes_of(c, f"{a}_web") == {n.node_id for n in c.nodes}, "spread: one task per node"
        for node in c.nodes:  # every node's proxy answers for every host
            wait_served(c, node, f"{a}.test", f"{a}/web/")
            got_a = get(c, node, f"{a}.test", 12)
            got_z = get(c, node, f"{z}.test", 12)
            assert all(g.startswith(f"{a}/web/") for g in got_a), got_a
            assert all(g.startswith(f"{z}/web/") for g in got_z), got_z
            assert len(set(got_a)) == 2, f"both tasks (one per node) serve: {Counter(got_a)}"
            assert get(c, node, "nobody.test", 2) == ["404", "404"]

        # Isolation: zeta's internal `web` is zeta's own (the zeta trap: its name sorts last),
        # and nothing of alpha resolves or answers from inside zeta.
        node, cid = task_container(c, f"{z}_caller")
        script = ("for i in $(seq 20); do wget -q -O - http://web:3000/ || echo FAIL; done; "
                  f"nslookup {a}-web >/dev/null 2>&1 && echo RESOLVES-ALPHA; "
                  f"nslookup {a}_web >/dev/null 2>&1 && echo RESOLVES-ALPHA-SERVICE; "
                  f"nslookup tasks.{a}_web >/dev/null 2>&1 && echo RESOLVES-ALPHA-TASKS; "
                  "nslookup luma-proxy >/dev/null 2>&1 && echo RESOLVES-PROXY; "
                  "nslookup luma-proxy-config >/dev/null 2>&1 && echo RESOLVES-CONFIG-SERVER; "
                  f"nslookup luma-proxy-gw-{a} >/dev/null 2>&1 && echo RESOLVES-ALPHA-GATEWAY; true")
        out = node.docker("exec", cid, "sh", "-c", script)
        calls = [line for line in out.splitlines() if "/" in line or line == "FAIL"]
        assert len(calls) == 20 and all(x.startswith(f"{z}/web/") for x in calls), out
        assert "RESOLVES" not in out, out

        # A routed task shares P_luma with its project's gateway only, which has no control surface.
        node, cid = task_container(c, f"{a}_web")
        gw_ips = _service_ips_on(c, f"luma-proxy-gw-{a}", f"{a}_luma")
        assert gw_ips, "alpha's gateway joined alpha's ingress network"
        assert not _service_ips_on(c, f"luma-proxy-gw-{z}", f"{a}_luma"), "zeta's gateway is not on alpha's"
        for ip in gw_ips:
            for port in (2019, 80, 443, 8443):
                r = node.docker("exec", cid, "sh", "-c", f"nc -w 2 {ip} {port} -e true </dev/null && echo OPEN || true")
                assert "OPEN" not in r, (ip, port, r)
        # The edges sit on the edge network alone: no project's overlay.
        edge_spec = dockerkit.json.loads(c.docker("service", "inspect", "luma-proxy"))[0]["Spec"]
        nets = [n["Target"] for n in edge_spec["TaskTemplate"]["Networks"]]
        assert [dockerkit.json.loads(c.docker("network", "inspect", n))[0]["Name"] for n in nets] == ["luma-proxy_edge"]
        # ... and a task of zeta cannot reach alpha's task at all (no shared network).
        zn, zcid = task_container(c, f"{z}_caller")
        a_ips = _task_ips(c, f"{a}_web")
        for ip in a_ips:
            r = zn.docker("exec", zcid, "sh", "-c", f"nc -w 2 {ip} 3000 -e true </dev/null && echo OPEN || true")
            assert "OPEN" not in r, f"zeta reached alpha's task {ip}"
        # No part of the proxy mounts anything (no Docker socket).
        for part in ("luma-proxy", "luma-proxy-config", f"luma-proxy-gw-{a}"):
            spec = dockerkit.json.loads(c.docker("service", "inspect", part))[0]["Spec"]
            assert not spec["TaskTemplate"]["ContainerSpec"].get("Mounts"), f"{part} has no mounts (no socket)"
    # down: routes, gateways and networks gone, unknown host again
    wait_served(c, c.manager, f"{a}.test", "404")
    assert not c.docker("network", "ls", "-q", "--filter", f"name={a}_").split()
    assert not c.docker("service", "ls", "-q", "--filter", f"name=luma-proxy-gw-{a}").split()


def _task_ips(c: clusterkit.Cluster, service: str) -> list[str]:
    ips = []
    for t in c.service_tasks(service):
        info = dockerkit.json.loads(c.docker("inspect", t["ID"]))[0]
        for att in info.get("NetworksAttachments") or []:
            ips += [a.split("/")[0] for a in att.get("Addresses") or []]
    return ips


def _service_ips_on(c: clusterkit.Cluster, service: str, network: str) -> list[str]:
    ips = []
    for t in c.service_tasks(service):
        info = dockerkit.json.loads(c.docker("inspect", t["ID"]))[0]
        for att in info.get("NetworksAttachments") or []:
            if att["Network"]["Spec"]["Name"] == network:
                ips += [a.split("/")[0] for a in att.get("Addresses") or []]
    return ips


def test_rolling_update_under_load_then_failed_health_check_rolls_back(swarm, tmp_path, busybox_image, unique):
    c = swarm
    name = unique("roll")
    host = f"{name}.test"
    with project(c, tmp_path, name, host, busybox_image) as f:
        wait_served(c, c.manager, host, f"{name}/web/")
        before = set(get(c, c.manager, host, 8))
        # v2 under load: Swarm's start-first update, each new task healthy before an old one stops.
        load = hey(c, c.manager, host, 25)
        time.sleep(2)
        f.write_text(APP.format(image=busybox_image, project=name, host=host, version="2", command=GOOD))
        luma(c, "deploy", "--swarm", "-f", str(f), "-p", name, "--resolve-image", "never")
        codes, errors, out = hey_result(load)
        assert sum(codes.values()) > 0, out  # it ran; how much is the machine's (printed)
        assert set(codes) == {200} and errors == 0, out
        after = set(get(c, c.manager, host, 8))
        assert after and not (after & before), "every task was replaced"

        # A version whose health check fails: Swarm rolls back, the old tasks never stop serving.
        load = hey(c, c.manager, host, 30)
        time.sleep(2)
        f.write_text(APP.format(image=busybox_image, project=name, host=host, version="3", command=BROKEN))
        p = luma(c, "deploy", "--swarm", "-f", str(f), "-p", name, "--resolve-image", "never", check=False)
        codes, errors, out = hey_result(load)
        assert p.returncode == 1 and "rolled it back" in p.stderr, p.stderr
        assert set(codes) == {200} and errors == 0, out
        assert set(get(c, c.manager, host, 8)) == after, "the v2 tasks kept serving"


def test_drained_node_tasks_move_and_stay_served(swarm, tmp_path, busybox_image, unique):
    c = swarm
    name = unique("drain")
    host = f"{name}.test"
    worker = c.nodes[1]
    with project(c, tmp_path, name, host, busybox_image):
        wait_served(c, c.manager, host, f"{name}/web/")
        assert worker.node_id in nodes_of(c, f"{name}_web")
        load = hey(c, c.manager, host, 20)
        try:
            c.docker("node", "update", "--availability", "drain", worker.node_id)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if nodes_of(c, f"{name}_web") == {c.manager.node_id} and len(c.service_tasks(f"{name}_web")) == 2:
                    break
                time.sleep(0.5)
            assert nodes_of(c, f"{name}_web") == {c.manager.node_id}
            codes, errors, out = hey_result(load)
            assert set(codes) == {200} and errors == 0, out
            # both moved tasks answer, once the new one is in DNS (a loaded machine takes its time)
            assert len(distinct_bodies(c, c.manager, host, f"{name}/web/", 2)) == 2
        finally:
            c.docker("node", "update", "--availability", "active", worker.node_id, check=False)
            if load.poll() is None:
                load.kill()


def wait_for(what: str, cond, timeout: float = 90) -> float:
    """Poll ``cond`` until true; seconds it took."""
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.5)
    return time.monotonic() - t0


def distinct_bodies(c: clusterkit.Cluster, node: clusterkit.Node, host: str, prefix: str, want: int,
                    timeout: float = 60) -> set[str]:
    """Poll the proxy on ``node`` until ``want`` different tasks have answered (only ``prefix`` bodies)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(seen) < want:
        got = get(c, node, host, 12)
        assert all(g.startswith(prefix) for g in got), got
        seen |= set(got)
    assert len(seen) == want, f"via {node.ip}: {seen}"
    return seen


def light_load(c: clusterkit.Cluster, node: clusterkit.Node, host: str, seconds: int) -> subprocess.Popen:
    """A small, bounded load: 2 workers at 50 req/s each."""
    return c.client_popen(["hey", "-z", f"{seconds}s", "-c", "2", "-q", "50", "-host", host,
                           f"http://{node.ip}:{PORT}/"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_node_joining_leaving_and_manager_restart_converge_by_themselves(swarm, tmp_path, busybox_image,
                                                                         caddy_image, unique):
    """Issue 13: a node joining or leaving and a manager restart need no luma-compose command."""
    c = swarm
    name = unique("grow")
    host = f"{name}.test"
    old = list(c.nodes)
    with project(c, tmp_path, name, host, busybox_image):
        wait_served(c, c.manager, host, f"{name}/web/")

        # A third node joins: the global proxy gets a task there by Swarm alone, and it serves.
        t0 = time.monotonic()
        new = c.add_node(images=[busybox_image, caddy_image])
        joined = time.monotonic() - t0
        served_new = wait_for("the new node's proxy serves", lambda: all(
            g.startswith(f"{name}/web/") for g in get(c, new, host, 4)), timeout=120)
        assert new.node_id in nodes_of(c, "luma-proxy")
        # Scaled up, the service spreads a task onto it, served through every node's proxy.
        c.docker("service", "scale", "-d", f"{name}_web=3")
        wait_for("a task on the new node", lambda: new.node_id in nodes_of(c, f"{name}_web"))
        for node in c.nodes:
            distinct_bodies(c, node, host, f"{name}/web/", 3)

        # It leaves (swarm leave on it, node rm on the manager) under a small load on the others.
        loads = [light_load(c, node, host, 25) for node in old]
        try:
            time.sleep(2)
            t0 = time.monotonic()
            c.remove_node(new)
            left = time.monotonic() - t0
            back = wait_for("3 tasks running on the remaining nodes", lambda: len(c.service_tasks(
                f"{name}_web")) == 3 and nodes_of(c, f"{name}_web") <= {n.node_id for n in old})
            results = [hey_result(p) for p in loads]
        finally:
            for p in loads:
                if p.poll() is None:
                    p.kill()
        for codes, errors, out in results:
            assert sum(codes.values()) > 0, out  # it ran; how much is the machine's (printed)
            assert set(codes) == {200} and errors == 0, out
        assert nodes_of(c, "luma-proxy") == {n.node_id for n in old}

        # The manager's engine restarts: every host is served again on every node, with no
        # luma-compose command in between (the proxy tasks come back by Swarm itself).
        before = luma(c, "routes", "--swarm", "--format", "json").stdout
        t0 = time.monotonic()
        c.restart_engine(c.manager)
        engine_up = time.monotonic() - t0
        for node in c.nodes:
            wait_served(c, node, host, f"{name}/web/", timeout=180)
        converged = time.monotonic() - t0
        assert nodes_of(c, "luma-proxy") == {n.node_id for n in old}
        assert luma(c, "routes", "--swarm", "--format", "json").stdout == before
        print(f"\n[converge] join {joined:.1f}s + proxy serving on it {served_new:.1f}s; leave {left:.1f}s, "
              f"tasks back to 3 {back:.1f}s later; load {[sum(r[0].values()) for r in results]} OK; "
              f"manager restart: engine up {engine_up:.1f}s, every host served {converged:.1f}s")


WS = '["/usr/local/bin/ws-serve"]'

#: Runs in the client namespace: one WebSocket through a node's proxy (the image's ws-serve echoes
#: lines), a line echoed every 0.2 s until stdin closes. Prints OK <echoes> <greeting>, or why not.
WS_CLIENT = r"""
import select, socket, sys, time
host, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.create_connection((addr, port), timeout=10)
s.sendall(("GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n" % host).encode())
buf = b""
while b"hello from " not in buf or not buf.endswith(b"\n"):
    chunk = s.recv(4096)
    if not chunk:
        print("NO-UPGRADE", buf); sys.stdout.flush(); sys.exit(1)
    buf += chunk
greeting = buf.partition(b"\r\n\r\n")[2].decode().strip()
print("OPEN", greeting); sys.stdout.flush()
n = 0
while True:
    msg = ("m%d\n" % n).encode()
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        chunk = s.recv(4096)
        if not chunk:
            print("CLOSED after", n); sys.exit(1)
        got += chunk
    if got != msg:
        print("BAD", got); sys.exit(1)
    n += 1
    if select.select([sys.stdin], [], [], 0.2)[0]:
        break
print("OK", n, greeting)
"""


def test_a_route_change_disturbs_no_other_project(swarm, tmp_path, busybox_image, unique):
    """Projects share a swarm, never a fate: another project added and removed (a route change on
    every node) costs a steady project no request, on any node, and another one its open WebSocket.
    (The WebSocket's app is not the one under load: busybox's shell WebSocket server fails its
    health check under hey, and Swarm then replaces the task.)"""
    c = swarm
    a, chat, b = unique("steady"), unique("chat"), unique("newcomer")
    with project(c, tmp_path, a, f"{a}.test", busybox_image), \
            project(c, tmp_path, chat, f"{chat}.test", busybox_image, command=WS):
        for node in c.nodes:
            wait_served(c, node, f"{a}.test", f"{a}/web/")
            wait_served(c, node, f"{chat}.test", f"{chat}/web/")
        version = _config_version(c, c.manager)
        ws = c.client_popen(["python3", "-c", WS_CLIENT, f"{chat}.test", c.manager.ip, str(PORT)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # the load runs until the route changes are done, however long they take here (stopped by SIGINT)
        loads = [hey(c, node, f"{a}.test", 900) for node in c.nodes]
        try:
            time.sleep(2)
            t0 = time.monotonic()
            with project(c, tmp_path, b, f"{b}.test", busybox_image):
                added = time.monotonic() - t0
                for node in c.nodes:
                    wait_served(c, node, f"{b}.test", f"{b}/web/", timeout=60)
                assert all(_config_version(c, n) != version for n in c.nodes), "the edges loaded a new config"
            for node in c.nodes:
                wait_served(c, node, f"{b}.test", "404", timeout=60)
            changed = time.monotonic() - t0
            time.sleep(2)
            for p in loads:
                p.send_signal(signal.SIGINT)  # hey stops and reports
            results = [hey_result(p) for p in loads]
            ws_out, _ = ws.communicate(input="stop\n", timeout=30)
        finally:
            for p in [*loads, ws]:
                if p.poll() is None:
                    p.kill()
        for codes, errors, out in results:
            assert sum(codes.values()) > 0, out  # it ran; how much is the machine's (printed)
            assert set(codes) == {200} and errors == 0, out
        assert ws.returncode == 0 and ws_out.strip().splitlines()[-1].startswith("OK"), ws_out
        print(f"\n[route change] {b} added in {added:.1f}s and removed, {changed:.1f}s in all; "
              f"{[sum(r[0].values()) for r in results]} requests to {a}, all 200; "
              f"WebSocket to {chat}: {ws_out.strip().splitlines()[-1]}")


def _config_version(c: clusterkit.Cluster, node: clusterkit.Node) -> str:
    """The edge config a node's proxy runs (its 404s carry the version)."""
    out = c.in_client(["curl", "-s", "-o", "/dev/null", "-D", "-", "-m", "5", "-H", "Host: nobody.invalid",
                       f"http://{node.ip}:{PORT}/"]).stdout
    m = re.search(r"^Luma-Config: (\S+)", out, re.M | re.I)
    return m.group(1) if m else ""


EVIL = """\
services:
  decoy:
    image: {image}
    environment: {{PROJECT: evil, SERVICE: decoy}}
    command: {command}
    deploy:
      endpoint_mode: dnsrr
    networks:
      edge:
        aliases: [{alias}]
networks:
  edge:
    external: true
    name: luma-proxy_edge
"""


def test_a_service_posing_on_the_edge_network_never_gets_another_projects_traffic(
        swarm, tmp_path, busybox_image, unique):
    """A stack joins the proxy's edge network and answers to a project's gateway name, or to its
    target alias: the controller withholds that project's routes (404, never the impostor's
    answer) and says why; once the impostor is gone the project is served again. One answering
    to the config server's name gets nowhere: the edges pin the config server's certificate."""
    c = swarm
    a = unique("victim")
    with project(c, tmp_path, a, f"{a}.test", busybox_image):
        wait_served(c, c.manager, f"{a}.test", f"{a}/web/")
        for i, alias in enumerate([f"luma-proxy-gw-{a}", f"{a}-web"]):
            evil = unique(f"evil{i}")
            f = dockerkit.write(tmp_path / evil / "compose.yaml", EVIL.format(image=busybox_image, alias=alias,
                                                                              command=GOOD))
            try:
                c.docker("stack", "deploy", "--detach=false", "--resolve-image", "never", "-c", str(f), evil)
                p = luma(c, "proxy", "sync", "--swarm", check=False)
                assert p.returncode == 1 and f"answers to {alias}" in p.stderr and "withheld" in p.stderr, p.stderr
                for node in c.nodes:
                    wait_served(c, node, f"{a}.test", "404", timeout=60)
                    got = get(c, node, f"{a}.test", 20)
                    assert set(got) == {"404"}, got
            finally:
                c.docker("stack", "rm", evil, check=False)
                wait_for("the impostor's tasks gone", lambda: not c.service_tasks(f"{evil}_decoy"), timeout=60)
            luma(c, "proxy", "sync", "--swarm")
            for node in c.nodes:
                wait_served(c, node, f"{a}.test", f"{a}/web/", timeout=60)

        # posing as the config server: the edges do not take its config; routes keep changing.
        evil = unique("evilcfg")
        # it answers on the config server's port, in plain HTTP
        f = dockerkit.write(tmp_path / evil / "compose.yaml", EVIL.format(
            image=busybox_image, alias="luma-proxy-config", command='["httpd", "-f", "-p", "8443", "-h", "/"]'))
        b = unique("later")
        try:
            c.docker("stack", "deploy", "--detach=false", "--resolve-image", "never", "-c", str(f), evil)
            with project(c, tmp_path, b, f"{b}.test", busybox_image):
                for node in c.nodes:
                    wait_served(c, node, f"{b}.test", f"{b}/web/", timeout=30)
                    assert all(g.startswith(f"{a}/web/") for g in get(c, node, f"{a}.test", 10))
            assert "luma-proxy-config" in luma(c, "proxy", "sync", "--swarm", check=False).stderr
        finally:
            c.docker("stack", "rm", evil, check=False)


#: In the client namespace: the SHA-256 of the certificate HOST gets at ADDR:PORT, verified with ROOT.
CERT_OF = r"""
import hashlib, socket, ssl, sys
host, addr, port, root = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=root)
with socket.create_connection((addr, port), timeout=5) as s, ctx.wrap_socket(s, server_hostname=host) as t:
    t.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
    body = b""
    while True:
        chunk = t.recv(65536)
        if not chunk:
            break
        body += chunk
    print(hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest(), body.split(b"\r\n\r\n", 1)[-1].decode().strip())
"""


@contextlib.contextmanager
def client_pebble(c: clusterkit.Cluster, tmp: Path, http_port: int) -> Iterator[dict]:
    """Pebble (ACME) and its DNS in the client namespace, the "internet": it validates HTTP-01 on
    ``http_port`` of whatever address its DNS gives a host (set with add_a)."""
    from test_acme import make_ca

    ca, cert, key = make_ca(tmp, c.client_ip)
    cfg = {"pebble": {"listenAddress": f"{c.client_ip}:14000", "managementListenAddress": f"{c.client_ip}:15000",
                      "certificate": str(cert), "privateKey": str(key), "httpPort": http_port, "tlsPort": 5001,
                      "ocspResponderURL": "", "externalAccountBindingRequired": False}}
    (tmp / "pebble.json").write_text(dockerkit.json.dumps(cfg))
    log = tmp / "pebble.log"
    env = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    procs = [c.client_popen(["pebble-challtestsrv", "-dns01", "127.0.0.1:8053", "-http01", "", "-https01", "",
                             "-tlsalpn01", "", "-management", "127.0.0.1:8055", "-defaultIPv4", "192.0.2.1",
                             "-defaultIPv6", ""], stdout=open(tmp / "dns.log", "w"), stderr=subprocess.STDOUT),
             c.client_popen(["env", *(f"{k}={v}" for k, v in env.items()), "pebble", "-config",
                             str(tmp / "pebble.json"), "-dnsserver", "127.0.0.1:8053"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)]
    try:
        directory = f"https://{c.client_ip}:14000/dir"
        wait_for("pebble answers", lambda: c.in_client(["curl", "-sf", "--cacert", str(ca), directory]).returncode == 0,
                 timeout=30)

        def add_a(host: str, ip: str) -> None:
            c.in_client(["curl", "-sf", "-X", "POST", "-d", dockerkit.json.dumps({"host": host, "addresses": [ip]}),
                         "http://127.0.0.1:8055/add-a"], check=True)

        def orders() -> int:
            found = re.findall(r"There are now (\d+) orders in the db", log.read_text())
            return int(found[-1]) if found else 0

        root = tmp / "pebble-root.pem"
        root.write_text(c.in_client(["curl", "-sf", "--cacert", str(ca), f"https://{c.client_ip}:15000/roots/0"],
                                    check=True).stdout)
        yield {"directory": directory, "ca": ca, "root": root, "add_a": add_a, "orders": orders, "log": log}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)


def test_https_on_a_swarm_one_certificate_for_every_node(swarm, tmp_path, busybox_image, caddy_image, unique):
    """proxy up --swarm --tls acme with storage every edge shares: each host gets one certificate through HTTP-01
    (Pebble), whichever node the CA's validation reaches, and every node serves that same certificate;
    plain HTTP redirects to HTTPS. `status --swarm` shows each host's certificate and its expiry, and the
    edges' metrics serve it (read by a job on a proxy node: swarm/certs.py), the job gone after."""
    c = swarm
    px, http_port, https_port = unique("px"), 8081, 8444
    shared = tmp_path / "shared"
    shared.mkdir()
    name = unique("secure")
    h1, h2 = f"{name}-one.test", f"{name}-two.test"
    f = dockerkit.write(tmp_path / name / "compose.yaml", APP.format(
        image=busybox_image, project=name, host=f"{h1}, {h2}", version="1", command=GOOD))
    with client_pebble(c, tmp_path, http_port) as acme:
        # the CA reaches h1 on the manager and h2 on the worker
        acme["add_a"](h1, c.nodes[0].ip)
        acme["add_a"](h2, c.nodes[1].ip)
        try:
            luma(c, "proxy", "up", "--swarm", "--name", px, "--image", caddy_image, "--http-port",
                 str(http_port), "--tls", "acme", "--https-port", str(https_port), "--storage",
                 str(shared), "--acme-ca", acme["directory"], "--acme-ca-root", str(acme["ca"]),
                 "--metrics", str(CERT_MPORT), "--metrics-allow", f"{c.client_ip}/32")
            luma(c, "deploy", "--swarm", "-f", str(f), "-p", name, "--resolve-image", "never", "--proxy-name", px)

            def cert(host: str, node: clusterkit.Node) -> tuple[str, str] | None:
                p = c.in_client(["python3", "-c", CERT_OF, host, node.ip, str(https_port), str(acme["root"])])
                return tuple(p.stdout.split(None, 1)) if p.returncode == 0 and p.stdout.strip() else None

            certs = {}
            for host in (h1, h2):
                for node in c.nodes:
                    wait_for(f"{host} over HTTPS via {node.ip}", lambda: cert(host, node), timeout=120)
                    fp, body = cert(host, node)
                    assert body.startswith(f"{name}/web/"), body
                    certs[(host, node.ip)] = fp
            assert certs[(h1, c.nodes[0].ip)] == certs[(h1, c.nodes[1].ip)], "one certificate for h1 on every node"
            assert certs[(h2, c.nodes[0].ip)] == certs[(h2, c.nodes[1].ip)], "one certificate for h2 on every node"
            assert certs[(h1, c.nodes[0].ip)] != certs[(h2, c.nodes[0].ip)]
            assert acme["orders"]() == 2, f"one order per host for the whole swarm:\n{acme['log'].read_text()[-3000:]}"
            assert any(shared.rglob("*.crt")), "the certificates are in the shared storage"
            # plain HTTP: a known host is redirected to HTTPS on the HTTPS port
            head = c.in_client(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H",
                                f"Host: {h1}", f"http://{c.nodes[1].ip}:{http_port}/x"]).stdout
            assert head == f"308 https://{h1}:{https_port}/x", head
            certificates_on_a_swarm(c, px, shared, (h1, h2))
        finally:
            luma(c, "down", "--swarm", "-p", name, "--proxy-name", px, check=False)
            luma(c, "proxy", "down", "--swarm", "--name", px, check=False)


CERT_MPORT = 9187


def certificates_on_a_swarm(c: clusterkit.Cluster, px: str, shared: Path, hosts: tuple[str, ...]) -> None:
    """Each host's certificate in `status --swarm` and in the edges' metrics, with the expiry of the file in
    the shared storage; no job left behind."""
    import json
    from datetime import timezone

    from luma_compose.proxy.certs import not_after

    expiry = {f.parent.name: not_after(f.read_text()).astimezone(timezone.utc) for f in shared.rglob("*.crt")}
    t0 = time.monotonic()
    st = luma(c, "status", "--swarm", "--name", px, "--format", "json", check=False)
    print(f"status --swarm with a certificates job: {time.monotonic() - t0:.1f}s")  # measured, not asserted
    assert st.returncode in (0, 1), st.stderr
    got = {x["host"]: x for p in json.loads(st.stdout)["projects"] for s in p["services"] for x in s["certificates"]}
    for h in hosts:
        assert got[h]["state"] == "valid", got
        assert got[h]["not_after"] == expiry[h].strftime("%Y-%m-%dT%H:%M:%SZ"), (got[h], expiry[h])
    t0 = time.monotonic()
    luma(c, "proxy", "sync", "--swarm", "--name", px)  # a new process: reads the certificates with a job
    print(f"proxy sync --swarm with a certificates job: {time.monotonic() - t0:.1f}s")
    want = {f'luma_certificate_expiry_timestamp_seconds{{host="{h}"}} {int(expiry[h].timestamp())}' for h in hosts}

    def served(node: clusterkit.Node) -> bool:
        out = c.in_client(["curl", "-s", "-m", "5", f"http://{node.ip}:{CERT_MPORT}/luma/metrics"]).stdout
        return want <= set(out.splitlines())

    for node in c.nodes:
        wait_for(f"the certificates' expiry in the metrics of {node.ip}", lambda: served(node), timeout=60)
    left = dockerkit.run(["docker", "service", "ls", "--format", "{{.Name}}"], env=c.manager.env).stdout.split()
    assert not [n for n in left if n.startswith(f"{px}-certs-")], left


# --------------------------------------------------------------------------- hostile neighbours (issue 18)

#: A stack that joins an existing network ``net`` (the victim's overlay, or the proxy's edge network)
#: and answers there to ``alias``.
INTRUDER = """\
services:
  decoy:
    image: {image}
    environment: {{PROJECT: evil, SERVICE: decoy}}
    command: {command}
    deploy:
      endpoint_mode: dnsrr
    networks:
      target:
        aliases: [{alias}]
networks:
  target:
    external: true
    name: {net}
"""


@pytest.fixture(scope="module")
def victim(swarm, tmp_path_factory, busybox_image) -> Iterator[str]:
    """One victim project for the hostile-neighbour tests: 2 replicas, host app.<victim>.test."""
    name = dockerkit.unique("victim")
    with project(swarm, tmp_path_factory.mktemp("victim"), name, f"app.{name}.test", busybox_image) as f:
        for node in swarm.nodes:
            wait_served(swarm, node, f"app.{name}.test", f"{name}/web/")
        _VICTIM_FILE[name] = f
        yield name


_VICTIM_FILE: dict[str, Path] = {}


def _withheld_then_served_again(c: clusterkit.Cluster, victim: str, why: str, remove) -> None:
    """The victim's host answers 404 on every node (never anyone else's page) and sync says why;
    once ``remove()`` took the intruder away, a sync serves the victim again."""
    host = f"app.{victim}.test"
    try:
        p = luma(c, "proxy", "sync", "--swarm", check=False)
        assert p.returncode == 1 and why in p.stderr and f"routes of {victim} are withheld" in p.stderr, p.stderr
        for node in c.nodes:
            wait_served(c, node, host, "404", timeout=60)
            got = get(c, node, host, 30)
            assert set(got) == {"404"}, Counter(got)
        r = luma(c, "routes", "--swarm", "--format", "json", check=False)
        assert host in [h for w in dockerkit.json.loads(r.stdout)["withheld"] for h in w["hosts"]], r.stdout
    finally:
        remove()
    luma(c, "proxy", "sync", "--swarm")
    for node in c.nodes:
        wait_served(c, node, host, f"{victim}/web/", timeout=60)


def test_a_shadowing_name_in_any_case_or_with_a_trailing_dot_withholds_its_project(
        swarm, victim, tmp_path, busybox_image, unique):
    """Docker's DNS ignores case and a trailing dot: an intruder's alias spelled so, on the victim's
    overlay (the target alias) or on the edge network (the target alias, the gateway name)."""
    c = swarm
    for net, alias in [(f"{victim}_luma", f"{victim}-web".upper()),
                       (f"{victim}_luma", f"{victim.title()}-Web."),
                       ("luma-proxy_edge", f"luma-proxy-gw-{victim}".upper()),
                       ("luma-proxy_edge", f"{victim}-WEB.")]:
        evil = unique("evilcase")
        f = dockerkit.write(tmp_path / evil / "compose.yaml",
                            INTRUDER.format(image=busybox_image, command=GOOD, alias=alias, net=net))
        c.docker("stack", "deploy", "--detach=false", "--resolve-image", "never", "-c", str(f), evil)

        def remove(evil=evil) -> None:
            c.docker("stack", "rm", evil, check=False)
            wait_for("the intruder's tasks gone", lambda: not c.service_tasks(f"{evil}_decoy"), timeout=90)

        _withheld_then_served_again(c, victim, f"answers to {alias}", remove)


def test_a_plain_container_on_the_victims_overlay_withholds_it_on_any_node(swarm, victim, busybox_image, unique):
    """`docker run --network P_luma --network-alias P-web` (the overlay is attachable), on a worker and
    on the manager: no service list shows it; the watch does."""
    c = swarm
    for node, alias in [(c.nodes[1], f"{victim}-web"), (c.manager, f"{victim}-WEB")]:
        name = unique("sneaky")
        node.docker("run", "-d", "--name", name, "--network", f"{victim}_luma", "--network-alias", alias,
                     "-e", "PROJECT=evil", "-e", "SERVICE=sneaky", busybox_image)
        if node is c.manager:  # the victim's own deploy says it is not routed, and why
            p = luma(c, "deploy", "--swarm", "-f", str(_VICTIM_FILE[victim]), "-p", victim, "--resolve-image",
                     "never", check=False)
            assert p.returncode == 1 and "does not route it" in p.stderr and f"container {name}" in p.stderr, p.stderr
        _withheld_then_served_again(c, victim, f"container {name}",
                                    lambda: node.docker("rm", "-f", name, check=False))


def test_a_wildcard_never_takes_a_host_another_project_owns(swarm, victim, tmp_path, busybox_image, unique):
    """`hosts: ["*.<domain>", evil.<domain>]` in a project whose name sorts first: the victim's exact
    host stays the victim's, even while the victim is withheld (404, not the wildcard's page)."""
    c = swarm
    evil = unique("aaevil")  # sorts before the victim
    domain = f"{victim}.test"
    with project(c, tmp_path, evil, f'"*.{domain}", evil.{domain}', busybox_image):
        for node in c.nodes:
            wait_served(c, node, f"other.{domain}", f"{evil}/web/")
            wait_served(c, node, f"evil.{domain}", f"{evil}/web/")
            got = get(c, node, f"app.{domain}", 40)
            assert all(g.startswith(f"{victim}/web/") for g in got), Counter(got)
        served = dockerkit.json.loads(luma(c, "routes", "--swarm", "--format", "json").stdout)["routes"]
        assert [r["project"] for r in served if f"app.{domain}" in r["hosts"]] == [victim]
        name = unique("sneaky")
        c.nodes[1].docker("run", "-d", "--name", name, "--network", f"{victim}_luma", busybox_image)
        _withheld_then_served_again(c, victim, f"container {name}",
                                    lambda: c.nodes[1].docker("rm", "-f", name, check=False))


#: A hand-made stack whose routed service names another project's overlay in luma.network.
ON_OTHERS_NETWORK = """\
services:
  web:
    image: {image}
    environment: {{PROJECT: evil, SERVICE: web}}
    deploy:
      endpoint_mode: dnsrr
      labels:
        luma.managed: "true"
        luma.project: {evil}
        luma.service: web
        luma.hosts: evil.{victim}.test
        luma.port: "3000"
        luma.network: {victim}_luma
    networks: [target]
networks:
  target:
    external: true
    name: {victim}_luma
"""


def test_a_route_naming_another_projects_network_is_refused(swarm, victim, tmp_path, busybox_image, unique):
    c = swarm
    evil = unique("evilnet")
    f = dockerkit.write(tmp_path / "evil.yaml", ON_OTHERS_NETWORK.format(image=busybox_image, evil=evil, victim=victim))
    try:
        c.docker("stack", "deploy", "--detach=false", "--resolve-image", "never", "-c", str(f), evil)
        p = luma(c, "proxy", "sync", "--swarm", check=False)
        assert p.returncode == 1 and f"asks for the network {victim}_luma" in p.stderr, p.stderr
        assert not c.docker("service", "ls", "-q", "--filter", f"name=luma-proxy-gw-{evil}").split()
        assert not _service_ips_on(c, f"luma-proxy-gw-{evil}", f"{victim}_luma")
        for node in c.nodes:
            assert get(c, node, f"evil.{victim}.test", 4) == ["404"] * 4
    finally:
        c.docker("stack", "rm", evil, check=False)
        wait_for("the stack gone", lambda: not c.service_tasks(f"{evil}_web"), timeout=90)


def test_sync_recreates_a_removed_config_server(swarm, victim):
    """The config server removed and the edges restarted: they answer 503 (starting) until a sync
    makes the config server again, then every host is served."""
    c = swarm
    host = f"app.{victim}.test"
    c.docker("service", "rm", "luma-proxy-config")
    c.docker("service", "update", "--detach=false", "--force", "luma-proxy", timeout=300)
    for node in c.nodes:
        wait_served(c, node, host, "503", timeout=90)
    p = luma(c, "proxy", "sync", "--swarm")
    assert "recreated luma-proxy-config" in p.stderr, p.stderr
    for node in c.nodes:
        wait_served(c, node, host, f"{victim}/web/", timeout=90)
    assert not luma(c, "proxy", "sync", "--swarm").stderr.strip(), "converged: nothing more to do"

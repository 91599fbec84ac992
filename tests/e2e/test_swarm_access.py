"""Issue 22 item 3 on a real Docker Swarm (tests/support/cluster.py): `basic_auth` and `allow` at the
edges, the same guards as one host's proxy. Run under the private-engine lock:

    flock /tmp/luma-private-engine.lock env LUMA_NO_SETUP=1 bash scripts/test tests/e2e/test_swarm_access.py

The client runs in the cluster's client namespace (the "internet") and reaches each node's edge on
the node's own address (published in host mode): the edge sees the client's own address (the allow
list that names it admits it on every node; one that does not, refuses it).
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path
from typing import Iterator

import bcrypt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dockerkit  # noqa: E402
from luma_compose import contract  # noqa: E402
from support import cluster as clusterkit  # noqa: E402
from test_swarm import PORT, luma  # noqa: E402

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse"

SERVICE = """\
  {service}:
    image: {image}
    environment: {{PROJECT: {project}, SERVICE: {service}}}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:3000/up"]
      interval: 1s
      timeout: 1s
      retries: 2
    x-luma:
      hosts: [{service}.{project}.test]
      port: 3000
{extra}"""



def curl(c: clusterkit.Cluster, node: clusterkit.Node, host: str, *args: str) -> tuple[int, str, str]:
    """One GET from the client namespace through ``node``'s edge: (status, Luma-Guard header, body)."""
    p = c.in_client(["curl", "-sS", "-m", "20", "-D", "-", "-H", f"Host: {host}", *args,
                     f"http://{node.ip}:{PORT}/"], timeout=60)
    head, _, body = p.stdout.replace("\r\n", "\n").partition("\n\n")
    lines = head.splitlines()
    if not lines:
        return 0, "", p.stderr
    guard = next((ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("luma-guard:")), "")
    return int(lines[0].split()[1]), guard, body.strip()


def wait_for(c: clusterkit.Cluster, node: clusterkit.Node, host: str, want: int, *args: str,
             timeout: float = 90) -> tuple[int, str, str]:
    """Until ``host`` answers ``want`` through ``node`` (the edges pull their config every second)."""
    deadline = time.monotonic() + timeout
    got = curl(c, node, host, *args)
    while got[0] != want and time.monotonic() < deadline:
        time.sleep(0.5)
        got = curl(c, node, host, *args)
    return got


def test_basic_auth_and_allow_at_every_edge_and_a_hostile_label_refused(swarm, tmp_path, busybox_image):
    c = swarm
    name = dockerkit.unique("sacc")
    d = tmp_path / name
    d.mkdir()
    hashed = "$2y$" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode()[4:]
    (d / "users.htpasswd").write_text(f"alice:{hashed}\n")
    extras = {
        "auth": "      basic_auth: ./users.htpasswd\n",
        "lan": f"      allow: [{c.client_ip}/32]\n",
        "away": "      allow: [198.51.100.0/24, '2001:db8::/32']\n",
        "open": "",
    }
    text = "services:\n" + "".join(SERVICE.format(service=s, image=busybox_image, project=name, extra=x)
                                    for s, x in extras.items())
    f = dockerkit.write(d / "compose.yaml", text)
    try:
        luma(c, "deploy", "--swarm", "-f", str(f), "-p", name, "--resolve-image", "never")
        for node in c.nodes:
            assert wait_for(c, node, f"open.{name}.test", 200)[2].startswith(f"{name}/open/")
            status, guard, _ = curl(c, node, f"auth.{name}.test")
            assert (status, guard) == (401, "basic_auth")
            assert curl(c, node, f"auth.{name}.test", "-u", "alice:wrong")[0] == 401
            status, _, body = curl(c, node, f"auth.{name}.test", "-u", f"alice:{PASSWORD}")
            assert status == 200 and body.startswith(f"{name}/auth/"), (status, body)
            # the edge sees the client's own address: the list naming it admits it, another refuses it
            assert curl(c, node, f"lan.{name}.test")[2].startswith(f"{name}/lan/")
            assert curl(c, node, f"away.{name}.test")[:2] == (403, "allow")
        routes = luma(c, "routes", "--swarm", "--format", "json").stdout
        assert base64.b64encode(hashed.encode()).decode() not in routes and "$2y$" not in routes
        access = {r["service"]: r.get("access") for r in json.loads(routes)["routes"]}
        assert access["auth"] == {"basic_auth": ["alice"]} and access["open"] is None

        # a label set by hand on a service: a non-bcrypt hash. Refused (its host unknown, never
        # served unguarded); the project's other hosts and their guards stay as they were.
        md5 = base64.b64encode(b"$apr1$Vp8B3pQe$Zb8y1mS7wYcl0q0oSbX1e/").decode()
        c.docker("service", "update", "--detach", "--label-add", f"{contract.LABEL_BASIC_AUTH}=alice:{md5}",
                 contract.stack_service(name, "open"))
        sync = luma(c, "proxy", "sync", "--swarm", check=False)
        assert "MD5" in sync.stdout + sync.stderr, (sync.stdout, sync.stderr)
        for node in c.nodes:
            assert wait_for(c, node, f"open.{name}.test", 404)[0] == 404
            assert curl(c, node, f"auth.{name}.test")[0] == 401
            assert curl(c, node, f"lan.{name}.test")[2].startswith(f"{name}/lan/")
    finally:
        luma(c, "down", "--swarm", "-p", name, check=False)

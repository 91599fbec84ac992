"""Issue 22 item 4 on a real Docker Swarm (tests/support/cluster.py, 2 nodes): ``maintenance on|off
--swarm`` and ``deploy --swarm --maintenance``, through the edges of both nodes, from the client
namespace. Run it under the private-engine lock (CONTRIBUTING.md).

The state is a Swarm config with ``luma.maintenance.*`` labels: a later ``docker stack deploy`` (which
sets the services' labels from the file) and ``proxy sync --swarm`` keep it; the project's tasks are
never restarted by it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dockerkit  # noqa: E402
from support import cluster as clusterkit  # noqa: E402
from test_swarm import APP, BROKEN, GOOD, PORT, get, luma, wait_served  # noqa: E402

pytestmark = pytest.mark.e2e

PAGE = "<!doctype html><h1>Wartung {env.HOME}</h1><style>h1 { color: red }</style>\n"


@pytest.fixture
def cluster(swarm: clusterkit.Cluster) -> clusterkit.Cluster:
    return swarm


def deploy(c, tmp: Path, name: str, host: str, image: str, version: str, command: str = GOOD, *extra: str,
           check: bool = True):
    f = dockerkit.write(tmp / name / "compose.yaml", APP.format(image=image, project=name, host=host,
                                                               version=version, command=command))
    return luma(c, "deploy", "--swarm", "-f", str(f), "-p", name, "--resolve-image", "never", *extra, check=check)


def page_of(c, node, host: str) -> tuple[str, str, str]:
    """(status, Retry-After, body) of one GET through ``node``'s edge."""
    out = c.in_client(["sh", "-c", f"h=$(mktemp); curl -s -m 5 -D $h -H 'Host: {host}' http://{node.ip}:{PORT}/; "
                                   f"echo; echo '--luma--'; cat $h; rm -f $h"], timeout=60).stdout
    body, _, head = out.partition("\n--luma--\n")
    status = head.split()[1] if head.split() else "ERR"
    retry = next((ln.split(":", 1)[1].strip() for ln in head.splitlines() if ln.lower().startswith("retry-after:")), "")
    return status, retry, body  # the echo's newline went with the separator


def wait_page(c, host: str, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = [page_of(c, n, host) for n in c.nodes]
        if all(s == "503" and r == "300" and text in b for s, r, b in got):
            return
        time.sleep(0.5)
    raise AssertionError(f"{host} never served the maintenance page on every node: {got}")


def task_ids(c, service: str) -> set[str]:
    return {t["ID"] for t in c.service_tasks(service) if t.get("DesiredState") == "running"}


def test_maintenance_on_a_swarm_survives_a_stack_deploy_and_a_sync_and_deploy_maintenance_stays_on_after_a_rollback(
        cluster, busybox_image, tmp_path):
    c = cluster
    shop, quiet = dockerkit.unique("sshop"), dockerkit.unique("squiet")
    shop_host, quiet_host = f"{shop}.example.test", f"{quiet}.example.test"
    page = dockerkit.write(tmp_path / "page.html", PAGE)
    try:
        deploy(c, tmp_path, shop, shop_host, busybox_image, "1")
        deploy(c, tmp_path, quiet, quiet_host, busybox_image, "1")
        for n in c.nodes:
            wait_served(c, n, shop_host, shop)
        tasks = task_ids(c, f"{shop}_web")
        luma(c, "maintenance", "on", "--swarm", "-p", shop, "--page", str(page))
        wait_page(c, shop_host, PAGE.strip())
        assert page_of(c, c.nodes[0], shop_host)[2] == PAGE  # as-is: no placeholder expanded
        for n in c.nodes:
            assert all(g.startswith(quiet) for g in get(c, n, quiet_host, 5))  # another project untouched
        assert task_ids(c, f"{shop}_web") == tasks  # its tasks keep running, none restarted
        cfgs = dockerkit.run(["docker", "config", "ls", "-q", "--filter", f"label=luma.maintenance.project={shop}"],
                             env=c.manager.env).stdout.split()
        assert len(cfgs) == 1
        routes = json.loads(luma(c, "routes", "--swarm", "--format", "json").stdout)
        assert [r["maintenance"]["page_bytes"] for r in routes["routes"] if r["project"] == shop] == [len(PAGE.encode())]
        # any later stack deploy or sync keeps it on
        deploy(c, tmp_path, shop, shop_host, busybox_image, "2")
        luma(c, "proxy", "sync", "--swarm")
        wait_page(c, shop_host, PAGE.strip())
        luma(c, "maintenance", "off", "--swarm", "-p", shop)
        for n in c.nodes:
            wait_served(c, n, shop_host, shop)
        # deploy --maintenance whose new version fails: Swarm rolls back, maintenance stays on
        r = deploy(c, tmp_path, shop, shop_host, busybox_image, "3", BROKEN, "--maintenance", check=False)
        assert r.returncode == 1 and "maintenance stays ON" in r.stderr, r.stderr
        wait_page(c, shop_host, "down for maintenance")
        luma(c, "maintenance", "off", "--swarm", "-p", shop)
        for n in c.nodes:
            wait_served(c, n, shop_host, shop)
        # and one that succeeds: on during the stack deploy, off after it
        r = deploy(c, tmp_path, shop, shop_host, busybox_image, "4", GOOD, "--maintenance")
        assert "maintenance: on" in r.stderr and "maintenance: off" in r.stderr
        for n in c.nodes:
            wait_served(c, n, shop_host, shop)
        bad = luma(c, "maintenance", "on", "--swarm", "-p", dockerkit.unique("nosuch"), check=False)
        assert bad.returncode == 2 and "is routed" in bad.stderr
    finally:
        luma(c, "maintenance", "off", "--swarm", "-p", shop, check=False)
        for p in (shop, quiet):
            luma(c, "down", "--swarm", "-p", p, check=False)

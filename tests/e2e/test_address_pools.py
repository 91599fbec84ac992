"""Issue 19 item 2: the 16th project. Real engine, real docker compose, real Caddy.

- The engine methods the network step adds behave on the real engine as on the fake one.
- Compose adopts the ``P_luma`` deploy creates (no warning, same network), ``down`` removes it, a
  re-``up`` and later deploys are fine.
- On a private dockerd with the stock address pools (run only under the machine-wide lock:
  ``flock /tmp/luma-private-engine.lock ...``): 20 projects deploy (each takes one default pool, not
  two); the pools running low is warned about; when they run out the error names the fix and the
  failed deploy leaves nothing behind; the fix itself, applied and the engine restarted, works.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import pytest

import dockerkit as dk
import proxykit as pk
from luma_compose import contract
from luma_compose.deploy import networks, subnets
from luma_compose.engine.client import Endpoint
from luma_compose.engine.docker_engine import DockerEngine, SubnetTaken
from luma_compose.records import COMPOSE_PROJECT_LABEL
from test_deploy import SELECT, block_yaml

SUPPORT = Path(__file__).resolve().parents[1] / "support"


def app(project: str, image: str, *, extra_network: bool = False) -> str:
    """One routed single-replica busybox service (and, with ``extra_network``, a second network)."""
    web = {"image": image, "environment": {"PROJECT": project, "SERVICE": "web"}, "stop_grace_period": "1s",
           "labels": {SELECT.split("=")[0]: SELECT.split("=")[1]},
           "x-luma": {"hosts": [f"{project}.test"], "port": 3000, "health": "/up"}}
    doc = {"name": project, "services": {"web": web}}
    if extra_network:
        web["networks"] = ["default", "back"]
        doc["networks"] = {"back": {}}
    return block_yaml(doc)


# --------------------------------------------------------------------------- the engine methods, real and fake


def _fake():
    from fake_engine import FakeEngine

    return FakeEngine()


@pytest.mark.parametrize("make", [lambda: DockerEngine(), _fake], ids=["docker", "fake"])
def test_the_engine_and_the_fake_create_and_list_networks_alike(make: Callable):
    e = make()
    a, b = dk.unique("poolnet"), dk.unique("poolnet")
    label = {"lumatest.pools": dk.RUN_ID}
    used = [s for subs in e.network_subnets().values() for s in subs]
    sub = str(next(subnets.free_subnets(subnets.parse_pool("172.16.0.0/16,size=27"), used)))
    try:
        rec = e.create_network(a, label, sub)
        assert (rec.name, dict(rec.labels)) == (a, label)
        assert e.network_subnets()[a] == (sub,)
        assert e.network_subnets([f"lumatest.pools={dk.RUN_ID}"]) == {a: (sub,)}
        assert e.create_network(a, label, sub).id == rec.id  # there already: returned as it is
        inside = str(next(ipaddress.ip_network(sub).subnets(new_prefix=28)))
        with pytest.raises(SubnetTaken):
            e.create_network(b, label, inside)
        assert e.network(b) is None
        pools = e.address_pools()
        assert pools is None or all(isinstance(base, str) and isinstance(size, int) for base, size in pools)
        if isinstance(e, DockerEngine):
            info = json.loads(dk.docker("info", "--format", "{{json .DefaultAddressPools}}") or "null")
            assert pools == ([(p["Base"], p["Size"]) for p in info] if info else None)
        assert e.remove_network(a) and a not in e.network_subnets()
    finally:
        for n in (a, b):
            with contextlib.suppress(Exception):
                e.remove_network(n)


# --------------------------------------------------------------------------- Compose adopts our network


def test_compose_adopts_the_ingress_network_deploy_creates(tmp_path, busybox_image):
    e = DockerEngine()
    project = dk.unique("adopt")
    net = contract.ingress_network(project)
    src = dk.write(tmp_path / "compose.yaml", app(project, busybox_image))
    text = dk.render(src, project)
    compose = e.compose(project, str(tmp_path), text)
    cfg = json.loads(compose.run("config", "--format", "json"))

    def up() -> str:
        p = dk.run(["docker", "compose", "-p", project, "-f", "-", "up", "-d"], input=text, cwd=tmp_path)
        return p.stderr

    def down() -> None:
        dk.run(["docker", "compose", "-p", project, "-f", "-", "down", "-t", "1"], input=text, cwd=tmp_path)

    try:
        subnet = networks.ensure_ingress(e, compose, project, cfg, subnets.default_pool())
        assert ipaddress.ip_network(subnet).subnet_of(ipaddress.ip_network(subnets.DEFAULT_BASE))
        ours = dk.inspect(net)["Id"]
        err = up()
        assert "not created by compose" not in err and "incorrect label" not in err, err
        assert dk.inspect(net)["Id"] == ours  # used, not recreated
        ip = dk.container_ips(f"{project}-web-1")[net]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnet)
        up()
        assert dk.inspect(net)["Id"] == ours  # a second up changes nothing
        down()
        assert dk.project_networks(project) == []  # down removed it, with the project's default network
        up()  # Compose alone creates it again, its own way
        assert dk.inspect(net)["Labels"].get("com.docker.compose.config-hash")
        down()
        assert networks.ensure_ingress(e, compose, project, cfg, subnets.default_pool())  # and deploy's way again
        ours = dk.inspect(net)["Id"]
        up()
        assert dk.inspect(net)["Id"] == ours and "com.docker.compose.config-hash" not in dk.inspect(net)["Labels"]
    finally:
        dk.force_remove_project(project)


# --------------------------------------------------------------------------- stock pools, private engine


@pytest.fixture
def stock_engine(busybox_image, caddy_image) -> Iterator:
    from private_engine import PrivateEngine

    if os.geteuid() != 0:
        pytest.fail("the address pool test runs a private dockerd and must run as root")
    with PrivateEngine.started("la" + dk.RUN_ID[:6], stock_pools=True) as eng:
        eng.load_image(busybox_image)
        eng.load_image(caddy_image)
        yield eng


def test_twenty_projects_deploy_on_stock_pools_and_running_out_names_the_fix_and_leaves_nothing(
        stock_engine, busybox_image, caddy_image, tmp_path):
    eng = stock_engine
    engine = pk.Engine(env=eng.env, address=eng.ns_ip)
    de = DockerEngine(Endpoint(eng.host))
    proxy = dk.unique("poolproxy")

    def deploy(project: str, *extra: str, env: dict[str, str] | None = None, extra_network: bool = False):
        f = dk.write(tmp_path / project / "compose.yaml", app(project, busybox_image, extra_network=extra_network))
        return dk.run([*dk.luma_compose_cmd(), "deploy", "-f", str(f), "--drain", "0", "--timeout", "90",
                       "--proxy-name", proxy, "--proxy-image", caddy_image, "--proxy-http-port", "0.0.0.0:18080",
                       "--proxy-https-port", "127.0.0.1:0", "--proxy-tls", "off", "--proxy-select", SELECT, *extra],
                      check=False, timeout=300, env={**eng.env, **(env or {})})

    def left_behind(project: str) -> tuple[list[str], list[str]]:
        return (eng.docker("ps", "-aq", "--filter", f"label={COMPOSE_PROJECT_LABEL}={project}").split(),
                sorted(de.network_subnets([f"{COMPOSE_PROJECT_LABEL}={project}"])))

    def default_pool_left() -> int:
        used = [s for subs in de.network_subnets().values() for s in subs]
        capacity, taken = subnets.default_pool_usage(de.address_pools(), used)
        return capacity - taken

    projects = [f"pool{i:02d}" for i in range(20)]
    first = deploy(projects[0])
    assert first.returncode == 0, first.stderr
    # the rest four at a time: concurrent deploys pick their subnets from the same engine
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda p: deploy(p, env={subnets.POOL_ENV: "base=10.99.0.0/24,size=28"}
                                                 if p == projects[-1] else None), projects[1:]))
    for p, r in zip(projects[1:], results):
        assert r.returncode == 0, (p, r.stderr)
    luma = {p: de.network_subnets()[contract.ingress_network(p)] for p in projects}
    assert len({s for subs in luma.values() for s in subs}) == 20, luma  # all distinct
    assert luma[projects[-1]] == ("10.99.0.0/28",)  # $LUMA_INGRESS_POOL
    for p in projects[:-1]:
        assert ipaddress.ip_network(luma[p][0]).subnet_of(ipaddress.ip_network("172.16.0.0/16")), luma
    for p in projects:
        assert pk.get(eng.ns_ip, 18080, f"{p}.test")[0] == 200, p
    # docker0 and 20 P_default: 10 of the stock 31 left, no warning yet
    assert default_pool_left() == 10
    status = dk.run([*dk.luma_compose_cmd(), "proxy", "status", "--name", proxy], check=False, env=eng.env)
    assert "address pools" not in status.stderr, status.stderr

    fillers = [f"filler{i}" for i in range(9)]
    for n in fillers[:6]:
        eng.docker("network", "create", n)
    # 4 left: proxy status and the plan warn, with the fix
    status = dk.run([*dk.luma_compose_cmd(), "proxy", "status", "--name", proxy], check=False, env=eng.env)
    assert "4 of 31 networks left" in status.stderr and subnets.DAEMON_JSON_EXAMPLE in status.stderr, status.stderr
    f = dk.write(tmp_path / "late" / "compose.yaml", app("late", busybox_image))
    plan = dk.run([*dk.luma_compose_cmd(), "deploy", "--dry-run", "-f", str(f), "--proxy-name", proxy],
                  check=False, env=eng.env)
    assert "3 of 31 networks left after this deploy" in plan.stderr, plan.stderr
    for n in fillers[6:]:
        eng.docker("network", "create", n)

    # our own range full: a clear error naming the option, nothing changed
    r = deploy("rangefull", "--ingress-pool", f"base={luma[projects[0]][0]},size=26")
    assert r.returncode == 1 and "no free /26 left in the ingress range" in r.stderr and "--ingress-pool" in r.stderr
    assert left_behind("rangefull") == ([], []) and default_pool_left() == 1

    # one pool left, a project with two networks: P_default is created, the next one fails
    r = deploy("twonets", extra_network=True)
    assert r.returncode != 0
    assert "Docker has no address pool left for a new network of twonets" in r.stderr, r.stderr
    assert "nothing this deploy created was left behind" in r.stderr
    assert "/etc/docker/daemon.json" in r.stderr and subnets.DAEMON_JSON_EXAMPLE in r.stderr
    assert "Traceback" not in r.stderr
    assert left_behind("twonets") == ([], [])
    assert eng.docker("ps", "-aq", "--filter", f"name={contract.lock_name('twonets')}") == ""
    # the pool it held was given back: a one-network project still fits, and then none
    assert default_pool_left() == 1
    r = deploy("lastone")
    assert r.returncode == 0, r.stderr
    r = deploy("toomany")
    assert r.returncode != 0 and "nothing this deploy created was left behind" in r.stderr, r.stderr
    assert left_behind("toomany") == ([], [])

    # the fix, as the error gives it: daemon.json, engine restarted; the same deploy then works
    eng.daemon_json = subnets.DAEMON_JSON_EXAMPLE
    eng.stop()
    eng.start(timeout=240)  # it restores 30 networks on a loaded machine
    de = DockerEngine(Endpoint(eng.host))
    r = deploy("toomany")
    assert r.returncode == 0, r.stderr
    default = de.network_subnets()["toomany_default"]
    assert ipaddress.ip_network(default[0]).subnet_of(ipaddress.ip_network("10.200.0.0/16")), default
    assert pk.get(eng.ns_ip, 18080, "toomany.test")[0] == 200

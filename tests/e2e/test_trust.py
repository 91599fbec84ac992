"""Issue 18 (single host): a hostile neighbour or an unlucky operator never moves one project's
traffic to another's container. Real engine, real compose, real Caddy; each test has its own
proxy (``--select`` on this run's label) and its own projects.

Classes of attack/fault: a wildcard over another project's exact host (2), a container removed
by hand (3), every spelling of a dialled name Docker's DNS answers (4), containers on a
project's ``P_luma`` that are not its own, however made (5, 6), networks and containers
vanishing while the proxy reads them (10).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from pathlib import Path

import pytest

import dockerkit as dk
import proxykit as pk
from luma_compose import contract

pytestmark = pytest.mark.e2e


@pytest.fixture
def site(tmp_path, busybox_image, caddy_image):
    """A proxy and a victim project (web on app.<victim>.test), synced once."""
    with contextlib.ExitStack() as stack:
        proxy = stack.enter_context(pk.proxy(pk.SHARED, caddy_image, "--tls", "off"))
        name = dk.unique("victim")
        host = f"app.{name}.test"
        victim = stack.enter_context(pk.project(pk.SHARED, tmp_path, name, busybox_image, {"web": {"hosts": [host]}}))
        proxy.sync(check=True)
        assert pk.serves(proxy, host, f"{name}/web/") == {(200, f"{name}/web/"): 10}
        yield proxy, victim, host, tmp_path, stack


def only_victim(proxy: pk.Proxy, host: str, victim: str, n: int = 20) -> Counter:
    """n GETs of ``host``: each must be the victim's answer or a 503 of the proxy, nothing else."""
    got = pk.serves(proxy, host, f"{victim}/web/", n)
    stray = {k: v for k, v in got.items() if k[1] != f"{victim}/web/" and not (k[0] == 503 and "luma-compose" in k[1])}
    assert not stray, got
    return Counter({(code, "luma-compose" if code == 503 else body): v for (code, body), v in got.items()})


def status(proxy: pk.Proxy):
    return pk.SHARED.cli("proxy", "status", "--name", proxy.name, "--format", "json", check=False)


# ------------------------------------------------------------------------------- item 2

@pytest.mark.parametrize("evil_hosts", [["*.{d}", "evil.{d}"], ["*.{d}"]], ids=["wildcard+exact", "wildcard"])
def test_a_wildcard_never_takes_a_host_another_project_names(site, busybox_image, evil_hosts):
    proxy, victim, host, workdir, stack = site
    domain = host.split(".", 1)[1]
    evil = "aaa" + dk.unique("")  # sorts first
    stack.enter_context(pk.project(pk.SHARED, workdir, evil, busybox_image,
                                   {"web": {"hosts": [h.format(d=domain) for h in evil_hosts]}}))
    proxy.sync()
    assert pk.serves(proxy, host, f"{victim.name}/web/") == {(200, f"{victim.name}/web/"): 10}
    assert pk.serves(proxy, f"other.{domain}", f"{evil}/web/") == {(200, f"{evil}/web/"): 10}  # the rest is evil's
    table = proxy.routes()
    (c,) = [c for c in table["conflicts"] if c["kind"] == "wildcard"]
    assert (c["key"], c["winner"], c["loser"]) == (host, f"{victim.name}/web", f"{evil}/web")
    st = status(proxy)
    assert st.returncode == 1 and json.loads(st.stdout)["proxy"]["in_sync"], (st.stdout, st.stderr)
    # the owner's container is removed by hand: its route is held (503), never the wildcard's
    dk.docker("rm", "-f", victim.container("web"))
    proxy.sync()
    assert pk.serves(proxy, host, "luma-compose") == {(503, "luma-compose"): 10}
    assert {r["project"] for r in proxy.routes()["routes"] if host in r["hosts"]} == {victim.name}


# ------------------------------------------------------------------------------- item 3

def test_a_container_removed_by_hand_keeps_its_projects_host_until_down(site, busybox_image, caddy_image):
    proxy, victim, host, workdir, stack = site
    rival = "aaa" + dk.unique("")
    stack.enter_context(pk.project(pk.SHARED, workdir, rival, busybox_image, {"web": {"hosts": [host]}}))
    proxy.sync()
    assert pk.serves(proxy, host, f"{victim.name}/web/") == {(200, f"{victim.name}/web/"): 10}
    net = contract.ingress_network(victim.name)
    dk.docker("rm", "-f", victim.container("web"))  # no down
    for _ in range(2):
        proxy.sync()
        assert pk.serves(proxy, host, "luma-compose") == {(503, "luma-compose"): 10}
    assert net in dk.docker("network", "ls", "--format", "{{.Name}}").split()
    (c,) = [c for c in proxy.routes()["conflicts"] if c["key"] == host]
    assert c["winner"] == f"{victim.name}/web"
    # the owner's redeploy is the owner's, never refused
    src = dk.write(workdir / "src" / victim.name / "compose.yaml", json.dumps({"name": victim.name, "services": {"web": {
        "image": busybox_image, "environment": {"PROJECT": victim.name, "SERVICE": "web"},
        "labels": {pk.SELECT_KEY: dk.RUN_ID}, "stop_grace_period": "1s",
        "x-luma": {"hosts": [host], "port": 3000}}}}))
    res = pk.SHARED.cli("deploy", "-f", str(src), "--drain", "0.5", "--timeout", "60", "--proxy-name", proxy.name,
                        "--proxy-image", caddy_image, "--proxy-http-port", "127.0.0.1:0",
                        "--proxy-https-port", "127.0.0.1:0", "--proxy-tls", "off", "--proxy-select", pk.SELECT,
                        check=False)
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert pk.serves(proxy, host, f"{victim.name}/web/") == {(200, f"{victim.name}/web/"): 10}
    # a plain `docker compose down` (the proxy still on victim_luma) gives the host up
    victim.compose("down", "--timeout", "1", check=False)
    proxy.sync()
    assert pk.wait_for(lambda: proxy.get(host)[1].startswith(f"{rival}/web/"), timeout=20)
    assert net not in dk.docker("network", "ls", "--format", "{{.Name}}").split()


# ------------------------------------------------------------------------------- item 4

def test_every_spelling_of_a_dialled_name_is_caught_on_either_network(site, busybox_image):
    proxy, victim, host, workdir, stack = site
    evil = "aaa" + dk.unique("")
    stack.enter_context(pk.project(pk.SHARED, workdir, evil, busybox_image, {"web": {"hosts": [f"{evil}.test"]}}))
    proxy.sync()
    dialled = victim.container("web")
    own, theirs = contract.ingress_network(victim.name), contract.ingress_network(evil)
    variants = []  # (how, spelling, network)
    for spelling in (dialled.upper(), dialled.capitalize(), dialled + ".", dialled.upper() + "."):
        variants += [("alias", spelling, theirs), ("alias", spelling, own)]
    for spelling in (dialled.upper(), dialled.title(), dialled + "."):
        variants += [("name", spelling, theirs), ("name", spelling, own)]
    variants += [("hostname", dialled.upper(), theirs)]
    assert len({(h, s, n) for h, s, n in variants}) >= 12
    for how, spelling, net in variants:
        shadow = dk.unique("shadow") if how != "name" else spelling
        args = {"alias": [], "name": [], "hostname": ["--hostname", spelling]}[how]
        with dk.container(shadow, busybox_image, *args, networks=[net],
                          aliases={net: [spelling]} if how == "alias" else None,
                          env={"PROJECT": "shadow", "SERVICE": "web"}):
            proxy.sync()
            got = only_victim(proxy, host, victim.name, 20)
            table = proxy.routes()
            assert any(dk.inspect(shadow)["Name"].lstrip("/") in p and dialled in p for p in table["problems"]), \
                (how, spelling, net, table["problems"])
            if net == theirs:
                assert net not in dk.container_networks(proxy.name), (how, spelling)
                assert got == {(200, f"{victim.name}/web/"): 20}, (how, spelling, got)
        proxy.sync()
    assert pk.serves(proxy, host, f"{victim.name}/web/") == {(200, f"{victim.name}/web/"): 10}


# ------------------------------------------------------------------------------- items 5 and 6

def _foreign_compose(workdir: Path, victim: pk.Project, name: str, image: str, forged: bool) -> pk.Project:
    """Another project whose service ``web`` joins the victim's ingress network as an external
    network; ``forged``: with every label of the victim's container, com.docker.compose.* included,
    and the victim's target alias."""
    net = contract.ingress_network(victim.name)
    labels = {pk.SELECT_KEY: dk.RUN_ID}
    aliases = []
    if forged:
        labels = dict(dk.inspect(victim.container("web"))["Config"]["Labels"])
        aliases = [contract.alias(victim.name, "web"), victim.container("web") + "x"]
    doc = {"services": {"web": {"image": image, "environment": {"PROJECT": name, "SERVICE": "web"},
                                "labels": labels, "stop_grace_period": "1s",
                                "networks": {"victim": {"aliases": aliases}, "default": {}}}},
           "networks": {"victim": {"name": net, "external": True}}}
    f = dk.write(workdir / name / "compose.yaml", json.dumps(doc))
    p = pk.Project(name, pk.SHARED, f)
    p.compose("up", "-d", "--quiet-pull")
    return p


@pytest.mark.parametrize("how", ["external-network", "forged-compose-labels", "docker-run"])
def test_a_foreign_container_on_the_ingress_network_gets_nothing_and_is_named(site, busybox_image, how):
    proxy, victim, host, workdir, stack = site
    net = contract.ingress_network(victim.name)
    name = dk.unique("intruder")
    if how == "docker-run":
        stack.enter_context(dk.container(name, busybox_image, networks=[net],
                                         aliases={net: ["web", contract.alias(victim.name, "web")]},
                                         env={"PROJECT": name, "SERVICE": "web"}))
        who = name
    else:
        p = _foreign_compose(workdir, victim, name, busybox_image, forged=how == "forged-compose-labels")
        stack.callback(lambda: p.compose("down", "--timeout", "1", check=False))
        who = p.container("web")
    proxy.sync()
    assert only_victim(proxy, host, victim.name, 30) == {(503, "luma-compose"): 30}  # withheld, never the intruder
    table = proxy.routes()
    (route,) = [r for r in table["routes"] if r["project"] == victim.name]
    assert [c["name"] for c in route["containers"]] == [victim.container("web")]
    (problem,) = [p for p in table["problems"] if f"not {victim.name}'s" in p]
    assert who in problem, problem
    if how != "docker-run":
        assert f"compose project {name}" in problem  # who did it
    assert status(proxy).returncode == 1
    # it leaves: the victim is served again
    if how == "docker-run":
        dk.docker("rm", "-f", name)
    else:
        dk.docker("network", "disconnect", "-f", net, who)
    proxy.sync()
    assert pk.wait_for(lambda: proxy.get(host)[1].startswith(f"{victim.name}/web/"), timeout=20)
    assert pk.serves(proxy, host, f"{victim.name}/web/") == {(200, f"{victim.name}/web/"): 10}


# ------------------------------------------------------------------------------- item 10

def test_networks_and_containers_vanishing_while_the_proxy_reads_are_no_error(site, busybox_image):
    proxy, victim, host, workdir, stack = site
    stop = threading.Event()
    made: list[str] = []
    errors: list[str] = []

    def churn(i: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            net = f"{dk.unique('churn')}{i}_{contract.NETWORK_KEY}"
            made.append(net)
            try:
                dk.docker("network", "create", "--label", f"{contract.NETWORK_OWNER_LABEL}=true",
                          "--label", dk.E2E_LABEL, net)
                c = f"{net}-c"
                dk.docker("run", "-d", "--name", c, "--label", dk.E2E_LABEL, "--network", net, busybox_image,
                          check=False)
                dk.docker("rm", "-f", c, check=False)
            finally:
                dk.docker("network", "rm", net, check=False)

    threads = [threading.Thread(target=churn, args=(i,), daemon=True) for i in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(30):
            cmd = [("proxy", "sync", "--name", proxy.name), ("routes", "--name", proxy.name),
                   ("proxy", "status", "--name", proxy.name)][i % 3]
            r = pk.SHARED.cli(*cmd, check=False)
            if r.returncode not in (0, 1) or "internal error" in r.stderr:
                errors.append(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        for net in made:
            dk.docker("rm", "-f", f"{net}-c", check=False)
            dk.docker("network", "rm", net, check=False)
    assert len(made) >= 3  # the churn ran
    assert not errors, "\n".join(errors)
    assert pk.serves(proxy, host, f"{victim.name}/web/") == {(200, f"{victim.name}/web/"): 10}

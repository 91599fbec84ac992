"""Issue 10, hijacking: a hostile project (or a hand-started container) on the same engine
cannot take a host it does not own. Real engine, real compose, real Caddy.

Each test has its own proxy (``--select`` on this run's label) and its own projects.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

import dockerkit as dk
import proxykit as pk
from luma_compose import contract


@pytest.fixture
def gmail(tmp_path, busybox_image, caddy_image):
    """A proxy serving project gmail (web on its own host), synced once."""
    with contextlib.ExitStack() as stack:
        proxy = stack.enter_context(pk.proxy(pk.SHARED, caddy_image, "--tls", "off"))
        name = dk.unique("gmail")
        host = f"mail.{name}.test"
        proj = stack.enter_context(pk.project(pk.SHARED, tmp_path, name, busybox_image, {"web": {"hosts": [host]}}))
        proxy.sync(check=True)
        assert pk.serves(proxy, host, f"{name}/web/") == {(200, f"{name}/web/"): 10}
        yield proxy, proj, host, tmp_path, stack


@pytest.mark.parametrize("hosts", ["{http.request.host}", "mail.{gmail}.test{env.NOPE}"])
def test_a_placeholder_in_a_host_label_takes_no_host(gmail, busybox_image, hosts):
    proxy, proj, host, workdir, stack = gmail
    name = "aaa" + dk.unique("")  # sorts first, like the reported attack
    hosts = hosts.replace("{gmail}", proj.name)
    stack.enter_context(pk.project(pk.SHARED, workdir, name, busybox_image,
                                   {"web": {"hosts": ["placeholder.test"], "labels": {contract.LABEL_HOSTS: hosts}}}))
    res = proxy.sync()
    assert pk.serves(proxy, host, f"{proj.name}/web/") == {(200, f"{proj.name}/web/"): 10}
    code, body = proxy.get(f"unknown.{proj.name}.test")
    assert code == 404 and not body.startswith(name)
    table = proxy.routes()
    assert name not in {r["project"] for r in table["routes"]}
    (problem,) = [p for p in table["problems"] if name in p]
    assert "luma.hosts" in problem and "not a DNS name" in problem
    # and status does not call this "in sync, no problem"
    status = pk.SHARED.cli("proxy", "status", "--name", proxy.name, check=False)
    assert status.returncode == 1 and name in status.stdout + status.stderr, (status.stdout, status.stderr)
    # nothing of the label reached Caddy's config
    cfg = dk.exec_sh(proxy.name, "wget -q -O - http://localhost:2019/config/").stdout
    assert "env.NOPE" not in cfg and "{http.request.host}\"" not in cfg.replace("https://{http.request.host}", "")
    assert res.returncode in (0, 1)


def test_a_hand_started_container_with_copied_labels_never_joins_the_pool(gmail, busybox_image):
    proxy, proj, host, workdir, stack = gmail
    labels = dk.inspect(proj.container("web"))["Config"]["Labels"]
    luma = {k: v for k, v in labels.items() if k.startswith("luma.") or k == pk.SELECT_KEY}
    intruder = dk.unique("intruder")
    args = []
    for k, v in luma.items():
        args += ["--label", f"{k}={v}"]
    net = contract.ingress_network(proj.name)
    stack.enter_context(dk.container(
        intruder, busybox_image, *args, "--health-cmd", "true", "--health-interval", "1s",
        networks=[net], aliases={net: [contract.alias(proj.name, "web")]},
        env={"PROJECT": "intruder", "SERVICE": "web"}))
    # its health check has passed ("healthy", and the newest container), however slow the machine
    assert pk.wait_for(lambda: dk.inspect(intruder)["State"].get("Health", {}).get("Status") == "healthy",
                       timeout=60)
    proxy.sync()
    # never the intruder; being a foreign container on gmail_luma, it withholds gmail (503) until it leaves
    assert pk.serves(proxy, host, "luma-compose", 30) == {(503, "luma-compose"): 30}
    table = proxy.routes()
    (route,) = [r for r in table["routes"] if r["project"] == proj.name]
    assert [c["name"] for c in route["containers"]] == [proj.container("web")]
    assert any(intruder in p and "Compose did not create it" in p for p in table["problems"]), table["problems"]
    assert any(intruder in p and f"not {proj.name}'s" in p for p in table["problems"]), table["problems"]
    dk.docker("rm", "-f", intruder)
    proxy.sync()
    assert pk.serves(proxy, host, f"{proj.name}/web/", 10) == {(200, f"{proj.name}/web/"): 10}


def test_a_container_answering_to_a_routed_container_name_is_reported_and_not_reached(gmail, busybox_image):
    """Docker DNS shadowing: the proxy dials containers by name; a container that answers to
    that name on another ingress network must not get the traffic."""
    proxy, proj, host, workdir, stack = gmail
    evil = dk.unique("evil")
    ev = stack.enter_context(pk.project(pk.SHARED, workdir, evil, busybox_image,
                                        {"web": {"hosts": [f"{evil}.test"]}}))
    proxy.sync()
    net = contract.ingress_network(ev.name)
    shadow = dk.unique("shadow")
    stack.enter_context(dk.container(shadow, busybox_image, networks=[net],
                                     aliases={net: [proj.container("web")]},
                                     env={"PROJECT": "shadow", "SERVICE": "web"}))
    proxy.sync()
    assert pk.serves(proxy, host, f"{proj.name}/web/", 30) == {(200, f"{proj.name}/web/"): 30}
    problems = proxy.routes()["problems"]
    assert any(shadow in p and proj.container("web") in p for p in problems), problems
    assert net not in dk.container_networks(proxy.name)


def test_ownership_survives_a_restart_of_the_owners_container(gmail, busybox_image):
    proxy, proj, host, workdir, stack = gmail
    evil = dk.unique("evil")
    stack.enter_context(pk.project(pk.SHARED, workdir, evil, busybox_image, {"web": {"hosts": [host]}}))
    proxy.sync()
    assert pk.serves(proxy, host, f"{proj.name}/web/") == {(200, f"{proj.name}/web/"): 10}
    # gmail's only container goes away for a while; syncs happen meanwhile (proxy run would)
    dk.docker("stop", "-t", "1", proj.container("web"))
    proxy.sync()
    code, body = proxy.get(host)
    assert code == 503 and not body.startswith(evil), (code, body)
    dk.docker("start", proj.container("web"))
    proxy.sync()
    assert pk.wait_for(lambda: proxy.get(host)[1].startswith(f"{proj.name}/web/"), timeout=10)
    dk.docker("restart", "-t", "1", proj.container("web"))
    proxy.sync()
    assert pk.serves(proxy, host, f"{proj.name}/web/") == {(200, f"{proj.name}/web/"): 10}
    # recreated by compose (a deploy does this): still gmail's
    proj.compose("up", "-d", "--force-recreate")
    proxy.sync()
    assert pk.serves(proxy, host, f"{proj.name}/web/") == {(200, f"{proj.name}/web/"): 10}
    (c,) = [c for c in proxy.routes()["conflicts"] if c["key"] == host]
    assert c["winner"] == f"{proj.name}/web"
    # the proxy container is recreated with a fresh volume (the served config is lost):
    # the older ingress network still decides for gmail, although evil's containers are older now
    dk.docker("rm", "-f", proxy.name)
    dk.docker("volume", "rm", "-f", proxy.volume)
    res = proxy.up(check=False)
    assert res.returncode == 1 and "ingress network is older" in res.stderr, (res.stdout, res.stderr)
    assert pk.serves(proxy, host, f"{proj.name}/web/") == {(200, f"{proj.name}/web/"): 10}
